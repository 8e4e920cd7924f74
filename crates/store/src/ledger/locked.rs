//! PostgreSQL's ledger writes: one transaction per entry, with the balance
//! row's lock serialising concurrent writers of one user. A floor applies to
//! the balance less the credits model holds reserve ([`super::holds`]).

use clawplane_domain::MicroUsd;
use sqlx::{Any, Row, Transaction};

use super::{
    entry_by_key, entry_from_row, replay, Appended, CursorAdvance, NewEntry, ENTRY_COLUMNS,
};
use crate::time::{now, to_millis};
use crate::{Backend, Store, StoreError};

impl Store {
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write.begin().await?,
        })
    }

    /// Appends one entry in its own transaction.
    pub(crate) async fn append_locked(&self, new: &NewEntry) -> Result<Appended, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(existing) = entry_by_key(&mut *tx, new.idempotency_key.as_str()).await? {
            tx.rollback().await?;
            return replay(existing, new);
        }
        let at = to_millis(new.at.unwrap_or_else(now));
        let balance_after = match move_balance(&mut tx, new, at).await? {
            Ok(balance) => balance,
            Err(balance) => {
                tx.rollback().await?;
                return Err(StoreError::InsufficientCredits { balance });
            }
        };
        if let Some(cursor) = &new.cursor {
            if !advance_cursor(&mut tx, cursor, at).await? {
                tx.rollback().await?;
                return Err(StoreError::Contended);
            }
        }
        let inserted = sqlx::query(&format!(
            "INSERT INTO credit_ledger (user_id, kind, source, amount_micro_usd, \
             balance_after_micro_usd, idempotency_key, request_hash, reverses_entry_id, meta, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {ENTRY_COLUMNS}"
        ))
        .bind(new.user_id.as_str().to_owned())
        .bind(new.kind.as_str())
        .bind(new.source.clone())
        .bind(new.amount.micros())
        .bind(balance_after.micros())
        .bind(new.idempotency_key.as_str().to_owned())
        .bind(new.request_hash.clone())
        .bind(new.reverses_entry_id)
        .bind(new.meta.to_string())
        .bind(at)
        .fetch_one(&mut *tx)
        .await;
        match inserted {
            Ok(row) => {
                let entry = entry_from_row(&row)?;
                tx.commit().await?;
                Ok(Appended::Applied(entry))
            }
            Err(e) if StoreError::is_unique_violation(&e) => {
                // A concurrent request with the same key (or a second reversal
                // of the same entry) committed first; ours is rolled back whole.
                tx.rollback().await?;
                match entry_by_key(&self.write, new.idempotency_key.as_str()).await? {
                    Some(existing) => replay(existing, new),
                    None => Err(StoreError::NotReversible(
                        new.reverses_entry_id.unwrap_or_default(),
                    )),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Applies the entry's delta to the balance row. `Ok(Err(available))` when
/// the floor refuses it (available: the balance less what holds reserve).
async fn move_balance(
    tx: &mut Transaction<'static, Any>,
    new: &NewEntry,
    at: i64,
) -> Result<Result<MicroUsd, MicroUsd>, StoreError> {
    let user = new.user_id.as_str().to_owned();
    let (enforce, floor) = match new.floor {
        Some(floor) => (1_i64, floor.micros()),
        None => (0, 0),
    };
    for _ in 0..3 {
        let updated = sqlx::query(
            "UPDATE credit_balances SET balance_micro_usd = balance_micro_usd + $2, \
             entry_count = entry_count + 1, updated_at = $3 \
             WHERE user_id = $1 AND ($4 = 0 OR balance_micro_usd - held_micro_usd + $2 >= $5) \
             RETURNING balance_micro_usd",
        )
        .bind(user.clone())
        .bind(new.amount.micros())
        .bind(at)
        .bind(enforce)
        .bind(floor)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(row) = updated {
            return Ok(Ok(MicroUsd::from_micros(row.try_get("balance_micro_usd")?)));
        }
        let existing = sqlx::query(
            "SELECT balance_micro_usd, held_micro_usd FROM credit_balances WHERE user_id = $1",
        )
        .bind(user.clone())
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(row) = existing {
            // What model holds reserve is not available to a floored burn.
            let balance: i64 = row.try_get("balance_micro_usd")?;
            let available = balance.saturating_sub(row.try_get("held_micro_usd")?);
            let after = available.checked_add(new.amount.micros());
            if enforce == 1 && after.is_none_or(|after| after < floor) {
                return Ok(Err(MicroUsd::from_micros(available)));
            }
            // The row was created by a transaction that committed after our
            // UPDATE looked (PostgreSQL): update it now.
            continue;
        }
        ensure_balance_row(tx, &user, at).await?;
    }
    Err(StoreError::Contended)
}

/// Creates the user's balance row at zero when it does not exist yet (a
/// concurrent creator wins quietly); the caller then tries its update again.
pub(crate) async fn ensure_balance_row(
    tx: &mut Transaction<'static, Any>,
    user: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO credit_balances (user_id, balance_micro_usd, entry_count, updated_at) \
         VALUES ($1, 0, 0, $2) ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(user.to_owned())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn advance_cursor(
    tx: &mut Transaction<'static, Any>,
    cursor: &CursorAdvance,
    at: i64,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE metering_cursors SET value_micro_usd = $3, updated_at = $4 \
         WHERE instance_id = $1 AND dimension = $2 AND value_micro_usd = $5",
    )
    .bind(cursor.instance_id.to_string())
    .bind(cursor.dimension.clone())
    .bind(cursor.to.micros())
    .bind(at)
    .bind(cursor.from.micros())
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() == 1 {
        return Ok(true);
    }
    if cursor.from != MicroUsd::ZERO {
        return Ok(false);
    }
    let inserted = sqlx::query(
        "INSERT INTO metering_cursors (instance_id, dimension, value_micro_usd, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (instance_id, dimension) DO NOTHING",
    )
    .bind(cursor.instance_id.to_string())
    .bind(cursor.dimension.clone())
    .bind(cursor.to.micros())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}
