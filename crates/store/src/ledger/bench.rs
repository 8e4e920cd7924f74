//! Benchmark set-up that no product path uses.

use clawplane_domain::{MicroUsd, UserId};

use crate::time::{now, to_millis};
use crate::{Backend, Store, StoreError};

impl Store {
    /// Benchmark set-up only: appends `count` grant entries of `amount` for
    /// `user` in one statement and moves the balance row to match, so that
    /// `verify` stays clean. Never used by the product.
    #[doc(hidden)]
    pub async fn bulk_load_grants_for_benchmark(
        &self,
        user: &UserId,
        count: i64,
        amount: MicroUsd,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let at = to_millis(now());
        let prefix = format!("bench-{}-", uuid::Uuid::new_v4().simple());
        let generate = match self.backend {
            Backend::Sqlite => {
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) SELECT i FROM n"
            }
            Backend::Postgres => "SELECT generate_series(1, $1) AS i",
        };
        sqlx::query(&format!(
            "INSERT INTO credit_ledger (user_id, kind, source, amount_micro_usd, balance_after_micro_usd, \
             idempotency_key, request_hash, meta, created_at) \
             SELECT $2, 'grant', 'benchmark', $3, $3 * i, $4 || CAST(i AS TEXT), 'benchmark', '{{}}', $5 \
             FROM ({generate}) AS series"
        ))
        .bind(count)
        .bind(user.as_str().to_owned())
        .bind(amount.micros())
        .bind(prefix)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO credit_balances (user_id, balance_micro_usd, entry_count, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO UPDATE SET \
             balance_micro_usd = credit_balances.balance_micro_usd + $2, \
             entry_count = credit_balances.entry_count + $3, updated_at = $4",
        )
        .bind(user.as_str().to_owned())
        .bind(amount.micros().saturating_mul(count))
        .bind(count)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
