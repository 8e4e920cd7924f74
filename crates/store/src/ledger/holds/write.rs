//! Reserve, settle and release: each one transaction; see the parent module
//! for how they are serialised on each engine.

use clawplane_domain::{EntryKind, LedgerEntry, MicroUsd};
use sqlx::{Any, Row, Transaction};

use super::{
    hold_from_row, model_entry_key, Hold, HoldId, HoldState, NewHold, Settlement, HOLD_COLUMNS,
    MODEL_SOURCE,
};
use crate::ledger::locked::ensure_balance_row;
use crate::ledger::{entry_from_row, ENTRY_COLUMNS};
use crate::time::{now, to_millis};
use crate::{Backend, Store, StoreError};

impl Store {
    /// Reserves `new.amount` of the user's credits for one model request.
    ///
    /// Succeeds only if `balance - held - amount >= floor`, decided by the
    /// balance row's conditional update inside the transaction, so no
    /// concurrency can overdraw; otherwise [`StoreError::InsufficientCredits`]
    /// with the available balance (balance less held). A second reserve with
    /// the same request id returns the existing hold, whatever its state now;
    /// with different fields it is [`StoreError::IdempotencyConflict`].
    pub async fn reserve_hold(&self, new: &NewHold, floor: MicroUsd) -> Result<Hold, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(existing) = select_hold(&mut tx, "request_id", &new.request_id, None).await? {
            tx.rollback().await?;
            return same_request(existing, new);
        }
        let at = to_millis(now());
        if let Err(available) = hold_credits(&mut tx, new, floor, at).await? {
            tx.rollback().await?;
            return Err(StoreError::InsufficientCredits { balance: available });
        }
        let inserted = sqlx::query(&format!(
            "INSERT INTO model_holds (id, user_id, instance_id, model, amount_micro_usd, request_id, \
             state, entry_id, created_at, closed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'open', NULL, $7, NULL) RETURNING {HOLD_COLUMNS}"
        ))
        .bind(HoldId::new().to_string())
        .bind(new.user_id.as_str().to_owned())
        .bind(new.instance_id.to_string())
        .bind(new.model.clone())
        .bind(new.amount.micros())
        .bind(new.request_id.clone())
        .bind(at)
        .fetch_one(&mut *tx)
        .await;
        match inserted {
            Ok(row) => {
                let hold = hold_from_row(&row)?;
                tx.commit().await?;
                Ok(hold)
            }
            Err(e) if StoreError::is_unique_violation(&e) => {
                // A concurrent reserve of the same request committed first
                // (PostgreSQL); ours, credits included, is rolled back whole.
                tx.rollback().await?;
                match self.hold_by_request(&new.request_id).await? {
                    Some(existing) => same_request(existing, new),
                    None => Err(StoreError::Contended),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Settles an open hold: in one transaction, one burn entry of
    /// `min(cost, hold)` (a negative cost counts as zero; source
    /// [`MODEL_SOURCE`], key [`model_entry_key`]), with `meta` plus the hold's
    /// model, request id, instance, hold id and amount and the reported cost;
    /// the rest of the hold is released. The floor is not checked: the hold
    /// reserved the credits. A settled hold answers with its entry again and
    /// writes nothing; a released one with [`Settlement::Released`]. An
    /// unknown hold is [`StoreError::EntryNotFound`].
    pub async fn settle_hold(
        &self,
        id: &HoldId,
        cost: MicroUsd,
        meta: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Settlement, StoreError> {
        let mut tx = self.begin_write().await?;
        let hold = match self.lock_hold(&mut tx, id).await? {
            Some(hold) => hold,
            None => {
                tx.rollback().await?;
                return Err(StoreError::EntryNotFound);
            }
        };
        match hold.state {
            HoldState::Open => {}
            HoldState::Settled => {
                let entry = settled_entry(&mut tx, &hold).await?;
                tx.rollback().await?;
                return Ok(Settlement::AlreadySettled { hold, entry });
            }
            HoldState::Released => {
                tx.rollback().await?;
                return Ok(Settlement::Released(hold));
            }
        }
        let charge = cost.clamp(MicroUsd::ZERO, hold.amount);
        let at = to_millis(now());
        let moved = sqlx::query(
            "UPDATE credit_balances SET balance_micro_usd = balance_micro_usd - $2, \
             held_micro_usd = held_micro_usd - $3, entry_count = entry_count + 1, updated_at = $4 \
             WHERE user_id = $1 RETURNING balance_micro_usd",
        )
        .bind(hold.user_id.as_str().to_owned())
        .bind(charge.micros())
        .bind(hold.amount.micros())
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("hold {} has no balance row", hold.id)))?;
        let balance_after: i64 = moved.try_get("balance_micro_usd")?;
        let mut meta = meta;
        for (k, v) in [
            ("model", serde_json::json!(hold.model)),
            ("request_id", serde_json::json!(hold.request_id)),
            (
                "instance_id",
                serde_json::json!(hold.instance_id.to_string()),
            ),
            ("hold_id", serde_json::json!(hold.id.to_string())),
            ("hold_micro_usd", serde_json::json!(hold.amount.micros())),
            ("cost_micro_usd", serde_json::json!(cost.micros())),
        ] {
            meta.insert(k.to_owned(), v);
        }
        let row = sqlx::query(&format!(
            "INSERT INTO credit_ledger (user_id, kind, source, amount_micro_usd, \
             balance_after_micro_usd, idempotency_key, request_hash, reverses_entry_id, meta, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9) RETURNING {ENTRY_COLUMNS}"
        ))
        .bind(hold.user_id.as_str().to_owned())
        .bind(EntryKind::Burn.as_str())
        .bind(MODEL_SOURCE)
        .bind(charge.micros().saturating_neg())
        .bind(balance_after)
        .bind(model_entry_key(&hold.request_id).as_str().to_owned())
        .bind(format!("model_hold:{}", hold.id))
        .bind(serde_json::Value::Object(meta).to_string())
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        let entry = entry_from_row(&row)?;
        let closed = close(&mut tx, &hold, HoldState::Settled, Some(entry.id), at).await?;
        tx.commit().await?;
        Ok(Settlement::Settled {
            hold: closed,
            entry,
        })
    }

    /// Releases an open hold: nothing billed, its credits free again.
    /// Idempotent: a released or settled hold is answered as it is. An
    /// unknown hold is [`StoreError::EntryNotFound`].
    pub async fn release_hold(&self, id: &HoldId) -> Result<Hold, StoreError> {
        let mut tx = self.begin_write().await?;
        let hold = match self.lock_hold(&mut tx, id).await? {
            Some(hold) => hold,
            None => {
                tx.rollback().await?;
                return Err(StoreError::EntryNotFound);
            }
        };
        if hold.state != HoldState::Open {
            tx.rollback().await?;
            return Ok(hold);
        }
        let at = to_millis(now());
        sqlx::query(
            "UPDATE credit_balances SET held_micro_usd = held_micro_usd - $2, updated_at = $3 \
             WHERE user_id = $1",
        )
        .bind(hold.user_id.as_str().to_owned())
        .bind(hold.amount.micros())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let closed = close(&mut tx, &hold, HoldState::Released, None, at).await?;
        tx.commit().await?;
        Ok(closed)
    }

    /// Reads a hold and, on PostgreSQL, locks its row until the transaction
    /// ends (SQLite's `BEGIN IMMEDIATE` already excludes every other writer).
    async fn lock_hold(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: &HoldId,
    ) -> Result<Option<Hold>, StoreError> {
        let lock = match self.backend {
            Backend::Postgres => Some("FOR UPDATE"),
            Backend::Sqlite => None,
        };
        select_hold(tx, "id", &id.to_string(), lock).await
    }
}

/// The existing hold of a request, if the new reserve asks for the same.
fn same_request(existing: Hold, new: &NewHold) -> Result<Hold, StoreError> {
    let same = existing.user_id == new.user_id
        && existing.instance_id == new.instance_id
        && existing.model == new.model
        && existing.amount == new.amount;
    if same {
        Ok(existing)
    } else {
        Err(StoreError::IdempotencyConflict)
    }
}

async fn select_hold(
    tx: &mut Transaction<'static, Any>,
    column: &str,
    value: &str,
    lock: Option<&str>,
) -> Result<Option<Hold>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {HOLD_COLUMNS} FROM model_holds WHERE {column} = $1 {}",
        lock.unwrap_or("")
    ))
    .bind(value.to_owned())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(hold_from_row).transpose()
}

/// Adds the hold to the user's held credits if `balance - held - amount >=
/// floor`. `Ok(Err(available))` when the floor refuses it.
async fn hold_credits(
    tx: &mut Transaction<'static, Any>,
    new: &NewHold,
    floor: MicroUsd,
    at: i64,
) -> Result<Result<(), MicroUsd>, StoreError> {
    let user = new.user_id.as_str().to_owned();
    let amount = new.amount.micros();
    for _ in 0..3 {
        let updated = sqlx::query(
            "UPDATE credit_balances SET held_micro_usd = held_micro_usd + $2, updated_at = $3 \
             WHERE user_id = $1 AND balance_micro_usd - held_micro_usd - $2 >= $4 \
             RETURNING held_micro_usd",
        )
        .bind(user.clone())
        .bind(amount)
        .bind(at)
        .bind(floor.micros())
        .fetch_optional(&mut **tx)
        .await?;
        if updated.is_some() {
            return Ok(Ok(()));
        }
        let existing = sqlx::query(
            "SELECT balance_micro_usd, held_micro_usd FROM credit_balances WHERE user_id = $1",
        )
        .bind(user.clone())
        .fetch_optional(&mut **tx)
        .await?;
        let available = match &existing {
            Some(row) => row
                .try_get::<i64, _>("balance_micro_usd")?
                .saturating_sub(row.try_get("held_micro_usd")?),
            None => 0,
        };
        if available
            .checked_sub(amount)
            .is_none_or(|after| after < floor.micros())
        {
            return Ok(Err(MicroUsd::from_micros(available)));
        }
        if existing.is_some() {
            // The row changed after our UPDATE looked (PostgreSQL): try again.
            continue;
        }
        ensure_balance_row(tx, &user, at).await?;
    }
    Err(StoreError::Contended)
}

/// Moves an open hold to `state`, recording the settling entry.
async fn close(
    tx: &mut Transaction<'static, Any>,
    hold: &Hold,
    state: HoldState,
    entry_id: Option<i64>,
    at: i64,
) -> Result<Hold, StoreError> {
    let row = sqlx::query(&format!(
        "UPDATE model_holds SET state = $2, entry_id = $3, closed_at = $4 \
         WHERE id = $1 AND state = 'open' RETURNING {HOLD_COLUMNS}"
    ))
    .bind(hold.id.to_string())
    .bind(state.as_str())
    .bind(entry_id)
    .bind(at)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::Corrupt(format!("hold {} closed under its lock", hold.id)))?;
    hold_from_row(&row)
}

async fn settled_entry(
    tx: &mut Transaction<'static, Any>,
    hold: &Hold,
) -> Result<LedgerEntry, StoreError> {
    let id = hold
        .entry_id
        .ok_or_else(|| StoreError::Corrupt(format!("settled hold {} has no entry", hold.id)))?;
    let row = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM credit_ledger WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::Corrupt(format!("hold {} names a missing entry {id}", hold.id)))?;
    entry_from_row(&row)
}
