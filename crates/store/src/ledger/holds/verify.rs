//! The holds' part of `verify`: held credits equal the open holds, every
//! settled hold has exactly its one burn, and no model burn lacks a hold.

use std::collections::BTreeMap;

use sqlx::Row;

use super::{model_entry_key, MODEL_SOURCE};
use crate::ledger::VerifyReport;
use crate::{Store, StoreError};

/// One inconsistency between holds, held credits and model burns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldProblem {
    /// Whose.
    pub user_id: String,
    /// The hold concerned, when there is one.
    pub hold_id: Option<String>,
    /// What is wrong, for the operator.
    pub problem: String,
}

impl Store {
    /// Adds the holds' checks to `report`.
    pub(crate) async fn verify_holds(&self, report: &mut VerifyReport) -> Result<(), StoreError> {
        let mut problems = Vec::new();

        // 1. Each user's held credits are the sum of their open holds.
        let mut held: BTreeMap<String, i64> = BTreeMap::new();
        for row in sqlx::query("SELECT user_id, held_micro_usd FROM credit_balances")
            .fetch_all(&self.read)
            .await?
        {
            held.insert(row.try_get("user_id")?, row.try_get("held_micro_usd")?);
        }
        let mut open: BTreeMap<String, i64> = BTreeMap::new();
        for row in sqlx::query(
            "SELECT user_id, CAST(SUM(amount_micro_usd) AS BIGINT) AS total FROM model_holds \
             WHERE state = 'open' GROUP BY user_id",
        )
        .fetch_all(&self.read)
        .await?
        {
            open.insert(row.try_get("user_id")?, row.try_get("total")?);
        }
        let users: std::collections::BTreeSet<&String> = held.keys().chain(open.keys()).collect();
        for user in users {
            let stored = held.get(user).copied().unwrap_or(0);
            let summed = open.get(user).copied().unwrap_or(0);
            if stored != summed {
                problems.push(HoldProblem {
                    user_id: user.clone(),
                    hold_id: None,
                    problem: format!(
                        "held credits are {stored} micro-USD but the open holds sum to {summed}"
                    ),
                });
            }
        }

        // 2. Every settled hold has its one burn: same user, the model source,
        // the key of its request, at most the hold.
        let rows = sqlx::query(
            "SELECT h.id, h.user_id, h.request_id, h.amount_micro_usd, l.id AS entry, \
             l.user_id AS entry_user, l.kind, l.source, l.amount_micro_usd AS entry_amount, \
             l.idempotency_key FROM model_holds h LEFT JOIN credit_ledger l ON l.id = h.entry_id \
             WHERE h.state = 'settled'",
        )
        .fetch_all(&self.read)
        .await?;
        report.holds += rows.len();
        for row in &rows {
            let user: String = row.try_get("user_id")?;
            let hold_id: String = row.try_get("id")?;
            let request: String = row.try_get("request_id")?;
            let amount: i64 = row.try_get("amount_micro_usd")?;
            let problem = match row.try_get::<Option<i64>, _>("entry")? {
                None => Some("settled, but its burn entry is missing".to_owned()),
                Some(entry) => {
                    let entry_user: String = row.try_get("entry_user")?;
                    let kind: String = row.try_get("kind")?;
                    let source: String = row.try_get("source")?;
                    let charged: i64 = row.try_get("entry_amount")?;
                    let key: String = row.try_get("idempotency_key")?;
                    let fits = entry_user == user
                        && kind == "burn"
                        && source == MODEL_SOURCE
                        && key == model_entry_key(&request).as_str()
                        && (-amount..=0).contains(&charged);
                    (!fits).then(|| {
                        format!("entry {entry} is not this hold's burn of at most {amount}")
                    })
                }
            };
            if let Some(problem) = problem {
                problems.push(HoldProblem {
                    user_id: user,
                    hold_id: Some(hold_id),
                    problem,
                });
            }
        }
        let others = sqlx::query("SELECT COUNT(*) AS n FROM model_holds WHERE state <> 'settled'")
            .fetch_one(&self.read)
            .await?;
        report.holds += usize::try_from(others.try_get::<i64, _>("n")?).unwrap_or(0);

        // 3. No model burn without the hold it settled.
        for row in sqlx::query(
            "SELECT l.id, l.user_id FROM credit_ledger l WHERE l.idempotency_key LIKE $1 \
             AND NOT EXISTS (SELECT 1 FROM model_holds h WHERE h.entry_id = l.id)",
        )
        .bind(format!("{}%", model_entry_key("").as_str()))
        .fetch_all(&self.read)
        .await?
        {
            let id: i64 = row.try_get("id")?;
            problems.push(HoldProblem {
                user_id: row.try_get("user_id")?,
                hold_id: None,
                problem: format!("model burn entry {id} settles no hold"),
            });
        }

        report.hold_problems = problems;
        Ok(())
    }
}
