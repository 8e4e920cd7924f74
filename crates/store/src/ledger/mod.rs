//! The credit ledger: append-only entries and an O(1) per-user balance.
//!
//! Every entry is written in the same transaction as its balance change (and,
//! for metering, the cursor it advances), and acknowledged only after that
//! transaction committed. How the write is made differs by engine, because
//! their concurrency models do:
//!
//! - [`locked`] (PostgreSQL, many writers): one transaction per entry; the
//!   balance row is moved by a conditional
//!   `UPDATE ... WHERE balance + delta >= floor`, whose row lock serialises
//!   writers of one user, so no burn overdraws; a racing duplicate key violates the unique index and rolls
//!   the whole transaction back.
//! - [`group_commit`] (SQLite, one writer): entries queue to a single writer
//!   task that applies a batch of them in one `BEGIN IMMEDIATE` transaction
//!   and answers each after the commit. With one writer the same checks need
//!   no locks, and one commit serves many entries.
//!
//! Both give the same results, which the test suite checks on both engines.
//!
//! [`holds`] adds two-phase model spend: credits reserved by open holds are
//! summed per user (`held_micro_usd`), and a burn with a floor leaves them
//! alone, so `balance - held + delta >= floor`.

mod bench;
pub(crate) mod group_commit;
pub mod holds;
mod locked;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use clawplane_domain::{EntryKind, IdempotencyKey, InstanceId, LedgerEntry, MicroUsd, UserId};
use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use crate::time::{from_millis, to_millis};
use crate::{Store, StoreError};

pub(crate) const ENTRY_COLUMNS: &str =
    "id, user_id, kind, source, amount_micro_usd, balance_after_micro_usd, \
    idempotency_key, reverses_entry_id, meta, created_at";

/// A ledger write to apply.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Whose balance.
    pub user_id: UserId,
    /// Grant, burn or reversal.
    pub kind: EntryKind,
    /// Why (`monthly`, `manual`, `runtime_time`, ...).
    pub source: String,
    /// Signed change of the balance.
    pub amount: MicroUsd,
    /// Makes the write happen at most once.
    pub idempotency_key: IdempotencyKey,
    /// A digest of the request, to tell a replay from a conflicting reuse.
    pub request_hash: String,
    /// Free-form JSON.
    pub meta: serde_json::Value,
    /// When set, refuse the entry if the balance would end below this.
    pub floor: Option<MicroUsd>,
    /// For a reversal: the entry it cancels.
    pub reverses_entry_id: Option<i64>,
    /// Advance a metering cursor in the same transaction.
    pub cursor: Option<CursorAdvance>,
    /// The entry's time; `None` means now. Jobs pass the time they run for.
    pub at: Option<DateTime<Utc>>,
}

/// Moves a metering cursor from `from` to `to` (compare and swap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorAdvance {
    /// The metered instance.
    pub instance_id: InstanceId,
    /// What is metered, e.g. `model:2026-11-24`.
    pub dimension: String,
    /// The value the cursor must have (absent counts as zero).
    pub from: MicroUsd,
    /// The new value.
    pub to: MicroUsd,
}

/// The result of [`Store::append_entry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Written now.
    Applied(LedgerEntry),
    /// Written before under the same key, for the same request: nothing new.
    Replayed(LedgerEntry),
}

impl Appended {
    /// The entry, new or replayed.
    pub fn entry(&self) -> &LedgerEntry {
        match self {
            Appended::Applied(e) | Appended::Replayed(e) => e,
        }
    }
}

/// One user whose stored balance differs from the sum of their entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceMismatch {
    /// The user.
    pub user_id: String,
    /// The balance row (zero when missing).
    pub stored: MicroUsd,
    /// The sum of the user's entries.
    pub summed: MicroUsd,
}

/// What [`Store::verify_ledger`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Users checked.
    pub users: usize,
    /// Entries summed.
    pub entries: i64,
    /// Differences (there must never be any).
    pub mismatches: Vec<BalanceMismatch>,
    /// Model holds checked.
    pub holds: usize,
    /// Inconsistencies of holds, held credits and model burns (there must
    /// never be any).
    pub hold_problems: Vec<holds::HoldProblem>,
}

impl VerifyReport {
    /// Whether nothing at all was found wrong.
    pub fn is_clean(&self) -> bool {
        self.mismatches.is_empty() && self.hold_problems.is_empty()
    }
}

impl Store {
    /// Appends an entry and moves the balance, atomically; see the module docs.
    pub async fn append_entry(&self, new: &NewEntry) -> Result<Appended, StoreError> {
        match &self.group_commit {
            Some(writer) => writer.append(new.clone()).await,
            None => self.append_locked(new).await,
        }
    }

    /// The entry written under this idempotency key, if any.
    pub async fn entry_by_idempotency_key(
        &self,
        key: &str,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        Ok(entry_by_key(&self.write, key)
            .await?
            .map(|(entry, _)| entry))
    }

    /// One entry of one user.
    pub async fn ledger_entry(&self, user: &UserId, id: i64) -> Result<LedgerEntry, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM credit_ledger WHERE id = $1 AND user_id = $2"
        ))
        .bind(id)
        .bind(user.as_str().to_owned())
        .fetch_optional(&self.write)
        .await?
        .ok_or(StoreError::EntryNotFound)?;
        entry_from_row(&row)
    }

    /// Whether some entry already reverses `id`.
    pub async fn is_reversed(&self, id: i64) -> Result<bool, StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM credit_ledger WHERE reverses_entry_id = $1")
                .bind(id)
                .fetch_one(&self.write)
                .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// The user's balance: one primary-key read, never a scan of the ledger.
    pub async fn balance(&self, user: &UserId) -> Result<MicroUsd, StoreError> {
        let row = sqlx::query("SELECT balance_micro_usd FROM credit_balances WHERE user_id = $1")
            .bind(user.as_str().to_owned())
            .fetch_optional(&self.read)
            .await?;
        Ok(match row {
            Some(row) => MicroUsd::from_micros(row.try_get("balance_micro_usd")?),
            None => MicroUsd::ZERO,
        })
    }

    /// The user's entries, newest first, at most `limit`, older than `before` (an entry id).
    pub async fn ledger_page(
        &self,
        user: &UserId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM credit_ledger WHERE user_id = $1 AND id < $2 \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(user.as_str().to_owned())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// The user's entries from `source` written in `[from, to)`, oldest
    /// first, at most `limit`.
    pub async fn entries_from_source(
        &self,
        user: &UserId,
        source: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM credit_ledger WHERE user_id = $1 AND source = $2 \
             AND created_at >= $3 AND created_at < $4 ORDER BY id LIMIT $5"
        ))
        .bind(user.as_str().to_owned())
        .bind(source.to_owned())
        .bind(to_millis(from))
        .bind(to_millis(to))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Credits burned by the user since `since`, net of reversed burns.
    pub async fn burned_since(
        &self,
        user: &UserId,
        since: DateTime<Utc>,
    ) -> Result<MicroUsd, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(l.amount_micro_usd), 0) AS BIGINT) AS total FROM credit_ledger l \
             WHERE l.user_id = $1 AND l.created_at >= $2 AND (l.kind = 'burn' OR (l.kind = 'reversal' \
             AND EXISTS (SELECT 1 FROM credit_ledger o WHERE o.id = l.reverses_entry_id AND o.kind = 'burn')))",
        )
        .bind(user.as_str().to_owned())
        .bind(to_millis(since))
        .fetch_one(&self.read)
        .await?;
        let total: i64 = row.try_get("total")?;
        Ok(MicroUsd::from_micros(total.saturating_neg()))
    }

    /// Users with a live instance (the monthly grant's recipients).
    pub async fn users_with_live_instances(&self) -> Result<Vec<UserId>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT user_id FROM openclaw_instances WHERE status <> 'deleted' ORDER BY user_id",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("user_id")?;
                UserId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    /// A metering cursor's value (zero when never advanced).
    pub async fn metering_cursor(
        &self,
        instance: InstanceId,
        dimension: &str,
    ) -> Result<MicroUsd, StoreError> {
        let row = sqlx::query(
            "SELECT value_micro_usd FROM metering_cursors WHERE instance_id = $1 AND dimension = $2",
        )
        .bind(instance.to_string())
        .bind(dimension.to_owned())
        .fetch_optional(&self.write)
        .await?;
        Ok(match row {
            Some(r) => MicroUsd::from_micros(r.try_get("value_micro_usd")?),
            None => MicroUsd::ZERO,
        })
    }

    /// Re-sums every user's entries and compares with the stored balances,
    /// and checks the model holds against held credits and model burns.
    pub async fn verify_ledger(&self) -> Result<VerifyReport, StoreError> {
        let sums = sqlx::query(
            "SELECT user_id, CAST(SUM(amount_micro_usd) AS BIGINT) AS total, COUNT(*) AS n \
             FROM credit_ledger GROUP BY user_id",
        )
        .fetch_all(&self.read)
        .await?;
        let balances = sqlx::query("SELECT user_id, balance_micro_usd FROM credit_balances")
            .fetch_all(&self.read)
            .await?;
        let mut summed: BTreeMap<String, i64> = BTreeMap::new();
        let mut report = VerifyReport::default();
        for row in &sums {
            summed.insert(row.try_get("user_id")?, row.try_get("total")?);
            report.entries += row.try_get::<i64, _>("n")?;
        }
        let mut stored: BTreeMap<String, i64> = BTreeMap::new();
        for row in &balances {
            stored.insert(row.try_get("user_id")?, row.try_get("balance_micro_usd")?);
        }
        let users: std::collections::BTreeSet<&String> =
            summed.keys().chain(stored.keys()).collect();
        report.users = users.len();
        for user in users {
            let s = summed.get(user).copied().unwrap_or(0);
            let b = stored.get(user).copied().unwrap_or(0);
            if s != b {
                report.mismatches.push(BalanceMismatch {
                    user_id: user.clone(),
                    stored: MicroUsd::from_micros(b),
                    summed: MicroUsd::from_micros(s),
                });
            }
        }
        self.verify_holds(&mut report).await?;
        Ok(report)
    }
}

pub(crate) fn replay(
    (existing, hash): (LedgerEntry, String),
    new: &NewEntry,
) -> Result<Appended, StoreError> {
    if hash == new.request_hash {
        Ok(Appended::Replayed(existing))
    } else {
        Err(StoreError::IdempotencyConflict)
    }
}

pub(crate) async fn entry_by_key<'e, E>(
    executor: E,
    key: &str,
) -> Result<Option<(LedgerEntry, String)>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let row = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS}, request_hash FROM credit_ledger WHERE idempotency_key = $1"
    ))
    .bind(key.to_owned())
    .fetch_optional(executor)
    .await?;
    match row {
        Some(row) => Ok(Some((entry_from_row(&row)?, row.try_get("request_hash")?))),
        None => Ok(None),
    }
}

pub(crate) fn entry_from_row(row: &AnyRow) -> Result<LedgerEntry, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(e);
    let user_id: String = row.try_get("user_id")?;
    let kind: String = row.try_get("kind")?;
    let meta: String = row.try_get("meta")?;
    Ok(LedgerEntry {
        id: row.try_get("id")?,
        user_id: UserId::parse(&user_id).map_err(|e| corrupt(e.to_string()))?,
        kind: EntryKind::parse(&kind)
            .ok_or_else(|| corrupt(format!("unknown entry kind {kind}")))?,
        source: row.try_get("source")?,
        amount: MicroUsd::from_micros(row.try_get("amount_micro_usd")?),
        balance_after: MicroUsd::from_micros(row.try_get("balance_after_micro_usd")?),
        idempotency_key: row.try_get("idempotency_key")?,
        reverses_entry_id: row.try_get("reverses_entry_id")?,
        meta: serde_json::from_str(&meta).map_err(|e| corrupt(e.to_string()))?,
        created_at: from_millis(row.try_get("created_at")?)?,
    })
}
