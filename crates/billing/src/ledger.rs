//! Ledger operations: the seed's three (balance, grant, burn), each answering
//! `{user_id, balance_usd}`, plus reversal, pages of entries, a summary and
//! `verify`; model spend in two phases (hold, then settle or release) is in
//! [`models`].
//!
//! Every write carries an idempotency key. The request is digested (SHA-256
//! over its operation, user, amount, source and meta), so a replay with the
//! same key and request returns the original entry and writes nothing, and a
//! reuse of the key for anything else is refused.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use clawplane_domain::{EntryKind, IdempotencyKey, LedgerEntry, MicroUsd, UserId};
use clawplane_store::{Appended, NewEntry, Store, StoreError, VerifyReport};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{BillingConfig, BillingError};

pub mod models;

pub use models::{ModelReservation, ModelUsage, RecoveryReport};

/// Largest single grant or burn: one billion dollars.
pub const MAX_AMOUNT: MicroUsd = MicroUsd::from_usd(1_000_000_000);
const MAX_META_BYTES: usize = 4096;

/// The answer of every ledger operation (the seed's shape, plus exact fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Balance {
    /// Whose balance.
    pub user_id: UserId,
    /// Rounded half-up to cents, as a JSON number (the seed's field).
    pub balance_usd: serde_json::Value,
    /// The exact balance in micro-USD.
    pub balance_micro_usd: i64,
    /// The entry written (or replayed), for writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<LedgerEntry>,
    /// True when an earlier identical request was replayed and nothing written.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

impl Balance {
    fn new(user_id: UserId, balance: MicroUsd) -> Self {
        Balance {
            user_id,
            balance_usd: balance.to_rounded_usd_json(),
            balance_micro_usd: balance.micros(),
            entry: None,
            replayed: false,
        }
    }
}

/// A grant or a burn: the same fields, the operation decides the sign.
#[derive(Debug, Clone)]
pub struct EntryRequest {
    /// Whose balance.
    pub user_id: UserId,
    /// How much (must be positive).
    pub amount: MicroUsd,
    /// Why: `monthly`, `promotional`, `manual`, `topup`, `usage`, `runtime_time`...
    pub source: String,
    /// Makes it happen once.
    pub idempotency_key: IdempotencyKey,
    /// Free-form JSON object.
    pub meta: serde_json::Value,
}

/// A grant: credits added to a user's balance.
pub type GrantRequest = EntryRequest;
/// A burn: credits used.
pub type BurnRequest = EntryRequest;

/// A user's billing summary for the API and the console.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Whose.
    pub user_id: UserId,
    /// Rounded to cents (seed field).
    pub balance_usd: serde_json::Value,
    /// Exact.
    pub balance_micro_usd: i64,
    /// Credits burned since the start of the month (UTC), rounded to cents.
    pub month_to_date_usage_usd: serde_json::Value,
    /// Exact.
    pub month_to_date_usage_micro_usd: i64,
    /// The floor below which burns are refused.
    pub floor_usd: serde_json::Value,
    /// The next monthly grant, when monthly grants are on.
    pub next_monthly_grant: Option<NextGrant>,
    /// The latest entries, newest first.
    pub recent_entries: Vec<LedgerEntry>,
}

/// When the next monthly grant comes and how much it is.
#[derive(Debug, Clone, Serialize)]
pub struct NextGrant {
    /// Amount rounded to cents.
    pub amount_usd: serde_json::Value,
    /// Exact amount.
    pub amount_micro_usd: i64,
    /// The first instant of next month, UTC, in milliseconds.
    pub at: i64,
}

/// A page of entries, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct EntryPage {
    /// The entries.
    pub entries: Vec<LedgerEntry>,
    /// Pass as `before` to get the next (older) page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// The ledger service.
#[derive(Clone, Debug)]
pub struct Ledger {
    store: Store,
    config: BillingConfig,
    /// Recent summaries per user, cleared by this process's writes for that
    /// user; the TTL bounds how late another process's write shows.
    summaries: Option<moka::future::Cache<UserId, Summary>>,
}

impl Ledger {
    /// A ledger over `store`.
    pub fn new(store: Store, config: BillingConfig) -> Self {
        let summaries = (!config.summary_cache_ttl.is_zero()).then(|| {
            moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(config.summary_cache_ttl)
                .build()
        });
        Ledger {
            store,
            config,
            summaries,
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &BillingConfig {
        &self.config
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The user's balance (O(1)).
    pub async fn balance(&self, user: &UserId) -> Result<Balance, BillingError> {
        Ok(Balance::new(user.clone(), self.store.balance(user).await?))
    }

    /// Adds credits.
    pub async fn grant(&self, req: GrantRequest) -> Result<Balance, BillingError> {
        let amount = check_amount(req.amount)?;
        check_source(&req.source)?;
        let meta = check_meta(req.meta)?;
        let entry = NewEntry {
            request_hash: request_hash("grant", &req.user_id, amount, &req.source, &meta),
            user_id: req.user_id,
            kind: EntryKind::Grant,
            source: req.source,
            amount,
            idempotency_key: req.idempotency_key,
            meta,
            floor: None,
            reverses_entry_id: None,
            cursor: None,
            at: None,
        };
        self.append(entry).await
    }

    /// Uses credits; refused (nothing written) when the balance would go
    /// below the floor.
    pub async fn burn(&self, req: BurnRequest) -> Result<Balance, BillingError> {
        self.burn_with(req, Some(self.config.floor), None).await
    }

    /// A burn with control over the floor and the metering cursor, for the
    /// metering job: usage that already happened is recorded exactly, floor
    /// or not (`floor: None`).
    pub(crate) async fn burn_with(
        &self,
        req: BurnRequest,
        floor: Option<MicroUsd>,
        cursor: Option<clawplane_store::CursorAdvance>,
    ) -> Result<Balance, BillingError> {
        let amount = check_amount(req.amount)?;
        check_source(&req.source)?;
        let meta = check_meta(req.meta)?;
        let negative = amount.checked_neg()?;
        let entry = NewEntry {
            request_hash: request_hash("burn", &req.user_id, amount, &req.source, &meta),
            user_id: req.user_id.clone(),
            kind: EntryKind::Burn,
            source: req.source,
            amount: negative,
            idempotency_key: req.idempotency_key,
            meta,
            floor,
            reverses_entry_id: None,
            cursor,
            at: None,
        };
        match self.append(entry).await {
            Err(BillingError::Store(StoreError::InsufficientCredits { balance })) => {
                Err(BillingError::InsufficientCredits {
                    balance,
                    amount,
                    floor: self.config.floor,
                })
            }
            other => other,
        }
    }

    /// Cancels an earlier grant or burn of `user` with an opposite entry.
    pub async fn reverse(
        &self,
        user: &UserId,
        entry_id: i64,
        idempotency_key: IdempotencyKey,
        reason: &str,
    ) -> Result<Balance, BillingError> {
        let original = self.store.ledger_entry(user, entry_id).await?;
        let meta = check_meta(
            serde_json::json!({ "reason": reason.chars().take(500).collect::<String>() }),
        )?;
        let amount = original.amount.checked_neg()?;
        let hash = request_hash(
            &format!("reversal:{entry_id}"),
            user,
            amount,
            &original.source,
            &meta,
        );
        if original.kind == EntryKind::Reversal {
            return Err(BillingError::NotReversible(entry_id));
        }
        if let Some(existing) = self
            .store
            .entry_by_idempotency_key(idempotency_key.as_str())
            .await?
        {
            if existing.reverses_entry_id != Some(entry_id) {
                return Err(BillingError::IdempotencyConflict);
            }
        } else if self.store.is_reversed(entry_id).await? {
            return Err(BillingError::NotReversible(entry_id));
        }
        self.append(NewEntry {
            user_id: user.clone(),
            kind: EntryKind::Reversal,
            source: original.source.clone(),
            amount,
            idempotency_key,
            request_hash: hash,
            meta,
            floor: None,
            reverses_entry_id: Some(entry_id),
            cursor: None,
            at: None,
        })
        .await
    }

    /// A page of the user's entries, newest first. `before` is the cursor
    /// from the previous page.
    pub async fn entries(
        &self,
        user: &UserId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<EntryPage, BillingError> {
        let before = match before.map(str::trim).filter(|s| !s.is_empty()) {
            Some(text) => Some(
                text.parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(BillingError::EntryNotFound)?,
            ),
            None => None,
        };
        let limit = limit.clamp(1, 200);
        let mut entries = self.store.ledger_page(user, before, limit + 1).await?;
        let next_cursor = if entries.len() > limit as usize {
            entries.truncate(limit as usize);
            entries.last().map(|e| e.id.to_string())
        } else {
            None
        };
        Ok(EntryPage {
            entries,
            next_cursor,
        })
    }

    /// Balance, month-to-date usage, the next grant and recent entries.
    /// Answered from memory for up to `summary_cache_ttl` (cleared by this
    /// process's writes for the user).
    pub async fn summary(
        &self,
        user: &UserId,
        now: DateTime<Utc>,
    ) -> Result<Summary, BillingError> {
        let Some(cache) = &self.summaries else {
            return self.summary_uncached(user, now).await;
        };
        if let Some(hit) = cache.get(user).await {
            return Ok(hit);
        }
        let summary = self.summary_uncached(user, now).await?;
        cache.insert(user.clone(), summary.clone()).await;
        Ok(summary)
    }

    async fn summary_uncached(
        &self,
        user: &UserId,
        now: DateTime<Utc>,
    ) -> Result<Summary, BillingError> {
        let balance = self.store.balance(user).await?;
        let usage = self.store.burned_since(user, month_start(now)).await?;
        let recent = self.store.ledger_page(user, None, 10).await?;
        let next_monthly_grant = (self.config.monthly_grant > MicroUsd::ZERO).then(|| NextGrant {
            amount_usd: self.config.monthly_grant.to_rounded_usd_json(),
            amount_micro_usd: self.config.monthly_grant.micros(),
            at: next_month_start(now).timestamp_millis(),
        });
        Ok(Summary {
            user_id: user.clone(),
            balance_usd: balance.to_rounded_usd_json(),
            balance_micro_usd: balance.micros(),
            month_to_date_usage_usd: usage.to_rounded_usd_json(),
            month_to_date_usage_micro_usd: usage.micros(),
            floor_usd: self.config.floor.to_rounded_usd_json(),
            next_monthly_grant,
            recent_entries: recent,
        })
    }

    /// Refuses to start a user's instance while their balance, less what
    /// open model holds reserve, is at or below the floor (when anything is
    /// metered): add credits first.
    pub async fn ensure_can_run(&self, user: &UserId) -> Result<(), BillingError> {
        let c = &self.config;
        if c.instance_hour_price <= MicroUsd::ZERO && !c.meter_model_spend {
            return Ok(());
        }
        let balance = self.store.available_balance(user).await?;
        if balance <= c.floor {
            return Err(BillingError::InsufficientCredits {
                balance,
                amount: MicroUsd::ZERO,
                floor: c.floor,
            });
        }
        Ok(())
    }

    /// Re-sums every user's entries against the stored balances, and checks
    /// model holds (held credits, one burn per settled hold, no model burn
    /// without a hold); see [`VerifyReport::is_clean`].
    pub async fn verify(&self) -> Result<VerifyReport, BillingError> {
        Ok(self.store.verify_ledger().await?)
    }

    pub(crate) async fn append(&self, entry: NewEntry) -> Result<Balance, BillingError> {
        let user = entry.user_id.clone();
        let appended = self.store.append_entry(&entry).await;
        if let Some(cache) = &self.summaries {
            cache.invalidate(&user).await;
        }
        let appended = appended?;
        let (entry, replayed) = match appended {
            Appended::Applied(e) => (e, false),
            Appended::Replayed(e) => (e, true),
        };
        // A replay answers with the balance as it is now; the entry carries
        // the balance right after the original write.
        let balance = if replayed {
            self.store.balance(&user).await?
        } else {
            entry.balance_after
        };
        let mut out = Balance::new(user, balance);
        out.entry = Some(entry);
        out.replayed = replayed;
        Ok(out)
    }
}

fn check_amount(amount: MicroUsd) -> Result<MicroUsd, BillingError> {
    let amount = amount.require_positive("amount_usd")?;
    if amount > MAX_AMOUNT {
        return Err(clawplane_domain::MoneyError::Overflow.into());
    }
    Ok(amount)
}

fn check_source(source: &str) -> Result<(), BillingError> {
    let ok = !source.is_empty()
        && source.len() <= 32
        && source
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(BillingError::InvalidSource)
    }
}

fn check_meta(meta: serde_json::Value) -> Result<serde_json::Value, BillingError> {
    let meta = match meta {
        serde_json::Value::Null => serde_json::json!({}),
        serde_json::Value::Object(_) => meta,
        _ => return Err(BillingError::InvalidMeta),
    };
    if meta.to_string().len() > MAX_META_BYTES {
        return Err(BillingError::InvalidMeta);
    }
    Ok(meta)
}

fn request_hash(
    op: &str,
    user: &UserId,
    amount: MicroUsd,
    source: &str,
    meta: &serde_json::Value,
) -> String {
    let mut hasher = Sha256::new();
    for part in [
        op,
        user.as_str(),
        &amount.micros().to_string(),
        source,
        &meta.to_string(),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The first instant of `now`'s month, UTC.
pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

/// The first instant of the month after `now`'s, UTC.
pub fn next_month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let (year, month) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_calendar_months_in_utc() {
        let t = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(
            month_start(t),
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            next_month_start(t),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn request_hashes_tell_requests_apart() {
        let u = UserId::parse("u").unwrap();
        let meta = serde_json::json!({});
        let a = request_hash("burn", &u, MicroUsd::from_micros(1), "usage", &meta);
        assert_eq!(
            a,
            request_hash("burn", &u, MicroUsd::from_micros(1), "usage", &meta)
        );
        assert_ne!(
            a,
            request_hash("burn", &u, MicroUsd::from_micros(2), "usage", &meta)
        );
        assert_ne!(
            a,
            request_hash("grant", &u, MicroUsd::from_micros(1), "usage", &meta)
        );
        assert_ne!(
            a,
            request_hash(
                "burn",
                &u,
                MicroUsd::from_micros(1),
                "usage",
                &serde_json::json!({"a":1})
            )
        );
    }

    #[test]
    fn sources_and_meta_are_checked() {
        assert!(check_source("runtime_time").is_ok());
        assert!(check_source("Runtime").is_err());
        assert!(check_source("").is_err());
        assert!(check_meta(serde_json::json!([1])).is_err());
        assert!(check_meta(serde_json::json!({"x": "y".repeat(5000)})).is_err());
        assert_eq!(
            check_meta(serde_json::Value::Null).unwrap(),
            serde_json::json!({})
        );
    }
}
