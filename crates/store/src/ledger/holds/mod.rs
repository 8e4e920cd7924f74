//! Model holds: two-phase model spend, after TigerBeetle's pending transfers.
//!
//! Before a model request is forwarded, its largest possible cost is
//! reserved as an open [`Hold`]; when the upstream's usage arrives the hold is
//! settled (one burn entry of `min(cost, hold)`, the rest released) or
//! released (nothing billed). A hold only ever moves from `open` to
//! `settled` or `released`, once.
//!
//! A user's open holds are summed in `credit_balances.held_micro_usd`, which
//! moves in the same transaction as the hold. That is what makes "no
//! overdraft under any concurrency" a single-row rule, decided inside the
//! transaction like the floor: a reserve succeeds only if
//! `balance - held - amount >= floor`, checked by the conditional `UPDATE` of
//! the balance row itself, and a burn with a floor (the API's burns) also
//! leaves what is held alone (`balance - held + delta >= floor`; see
//! [`super::locked`] and [`super::group_commit`]). A settle needs no floor:
//! the hold already reserved what it burns.
//!
//! How the three writes are serialised, by engine:
//!
//! - PostgreSQL: each is one transaction; the balance row's lock (taken by
//!   the conditional `UPDATE`, re-checked by PostgreSQL on the row's newest
//!   version) serialises reserves of one user, and `SELECT ... FOR UPDATE` on
//!   the hold row serialises a settle and a release of one hold.
//! - SQLite: each is its own `BEGIN IMMEDIATE` transaction on the store's
//!   write pool, which is the one connection the group-commit writer also
//!   uses, so they run strictly between its batches, and `BEGIN IMMEDIATE`
//!   keeps other processes out. They are not queued into the group commit
//!   because their decisions read and write a second table and answer with
//!   a different shape; a hold costs one short transaction, which is what a
//!   model request (seconds long) can afford, and keeps one code path for
//!   both engines.
//!
//! Idempotency: a reserve is keyed by the request id (unique), so a retry
//! gets the same hold; the settling burn's idempotency key is derived from
//! the request id ([`model_entry_key`]), and the hold records the entry, so a
//! second settle answers with the same entry and writes nothing. A settle
//! after a release is a no-op answered with [`Settlement::Released`]: the
//! credits were given back, and billing them now could overdraw.

mod verify;
mod write;

use std::fmt;

use chrono::{DateTime, Utc};
use clawplane_domain::{IdempotencyKey, InstanceId, LedgerEntry, MicroUsd, UserId};
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

pub use verify::HoldProblem;

use crate::time::{from_millis, to_millis};
use crate::{Store, StoreError};

/// The `source` of the burn entries that settle holds.
pub const MODEL_SOURCE: &str = "model";

/// Longest request id a hold accepts (the burn's idempotency key is
/// `clawplane:model:<request id>`, at most 200 characters).
pub const MAX_REQUEST_ID_LEN: usize = 184;

pub(crate) const HOLD_COLUMNS: &str = "id, user_id, instance_id, model, amount_micro_usd, \
    request_id, state, entry_id, created_at, closed_at";

/// The idempotency key of the burn that settles the hold of `request_id`.
pub fn model_entry_key(request_id: &str) -> IdempotencyKey {
    IdempotencyKey::internal(&["model", request_id])
}

/// A hold's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HoldId(Uuid);

impl HoldId {
    /// A fresh random id.
    pub fn new() -> Self {
        HoldId(Uuid::new_v4())
    }

    /// Parses an id from text; `None` when it is not one.
    pub fn parse(input: &str) -> Option<Self> {
        Uuid::parse_str(input.trim()).ok().map(HoldId)
    }
}

impl Default for HoldId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for HoldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a hold is in its life: open, then settled or released, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldState {
    /// Reserved; counted in the user's held credits.
    Open,
    /// Billed by one burn entry ([`Hold::entry_id`]).
    Settled,
    /// Given back; nothing billed.
    Released,
}

impl HoldState {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            HoldState::Open => "open",
            HoldState::Settled => "settled",
            HoldState::Released => "released",
        }
    }

    /// Parses a stored name.
    pub fn parse(input: &str) -> Option<Self> {
        match input {
            "open" => Some(HoldState::Open),
            "settled" => Some(HoldState::Settled),
            "released" => Some(HoldState::Released),
            _ => None,
        }
    }
}

/// A reservation of credits for one model request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Its id.
    pub id: HoldId,
    /// Whose credits.
    pub user_id: UserId,
    /// The instance that made the request.
    pub instance_id: InstanceId,
    /// The model asked for.
    pub model: String,
    /// How much is reserved (positive).
    pub amount: MicroUsd,
    /// The request's id (unique: one hold per request).
    pub request_id: String,
    /// Open, settled or released.
    pub state: HoldState,
    /// The burn that settled it (exactly when settled).
    pub entry_id: Option<i64>,
    /// When it was reserved.
    pub created_at: DateTime<Utc>,
    /// When it was settled or released.
    pub closed_at: Option<DateTime<Utc>>,
}

/// A hold to reserve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHold {
    /// Whose credits.
    pub user_id: UserId,
    /// The instance making the request.
    pub instance_id: InstanceId,
    /// The model asked for.
    pub model: String,
    /// How much to reserve (must be positive).
    pub amount: MicroUsd,
    /// The request's id; a second reserve with it returns the first hold.
    pub request_id: String,
}

/// The answer of [`Store::settle_hold`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Billed now: this burn entry was written.
    Settled {
        /// The hold, now settled.
        hold: Hold,
        /// The burn.
        entry: LedgerEntry,
    },
    /// Billed before (a retry): the same entry, nothing new written.
    AlreadySettled {
        /// The hold.
        hold: Hold,
        /// The burn written by the first settle.
        entry: LedgerEntry,
    },
    /// The hold was released before: nothing billed, now or later.
    Released(Hold),
}

impl Settlement {
    /// The hold as it is now.
    pub fn hold(&self) -> &Hold {
        match self {
            Settlement::Settled { hold, .. }
            | Settlement::AlreadySettled { hold, .. }
            | Settlement::Released(hold) => hold,
        }
    }

    /// The burn entry, unless the hold was released.
    pub fn entry(&self) -> Option<&LedgerEntry> {
        match self {
            Settlement::Settled { entry, .. } | Settlement::AlreadySettled { entry, .. } => {
                Some(entry)
            }
            Settlement::Released(_) => None,
        }
    }
}

impl Store {
    /// One hold by id.
    pub async fn hold(&self, id: &HoldId) -> Result<Option<Hold>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {HOLD_COLUMNS} FROM model_holds WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(hold_from_row).transpose()
    }

    /// The hold of a request, if one was reserved.
    pub async fn hold_by_request(&self, request_id: &str) -> Result<Option<Hold>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {HOLD_COLUMNS} FROM model_holds WHERE request_id = $1"
        ))
        .bind(request_id.to_owned())
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(hold_from_row).transpose()
    }

    /// Open holds, oldest first, at most `limit`; with `older_than`, only
    /// those reserved before it (for recovery after a crash).
    pub async fn open_holds(
        &self,
        older_than: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Hold>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {HOLD_COLUMNS} FROM model_holds WHERE state = 'open' AND created_at < $1 \
             ORDER BY created_at, id LIMIT $2"
        ))
        .bind(older_than.map_or(i64::MAX, to_millis))
        .bind(i64::from(limit))
        .fetch_all(&self.write)
        .await?;
        rows.iter().map(hold_from_row).collect()
    }

    /// The credits the user's open holds reserve (O(1)).
    pub async fn held_balance(&self, user: &UserId) -> Result<MicroUsd, StoreError> {
        Ok(self.balance_and_held(user).await?.1)
    }

    /// The balance less what open holds reserve: what a new burn or hold may
    /// use down to the floor (O(1)).
    pub async fn available_balance(&self, user: &UserId) -> Result<MicroUsd, StoreError> {
        let (balance, held) = self.balance_and_held(user).await?;
        Ok(MicroUsd::from_micros(
            balance.micros().saturating_sub(held.micros()),
        ))
    }

    async fn balance_and_held(&self, user: &UserId) -> Result<(MicroUsd, MicroUsd), StoreError> {
        let row = sqlx::query(
            "SELECT balance_micro_usd, held_micro_usd FROM credit_balances WHERE user_id = $1",
        )
        .bind(user.as_str().to_owned())
        .fetch_optional(&self.read)
        .await?;
        Ok(match row {
            Some(row) => (
                MicroUsd::from_micros(row.try_get("balance_micro_usd")?),
                MicroUsd::from_micros(row.try_get("held_micro_usd")?),
            ),
            None => (MicroUsd::ZERO, MicroUsd::ZERO),
        })
    }
}

pub(crate) fn hold_from_row(row: &AnyRow) -> Result<Hold, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(e);
    let id: String = row.try_get("id")?;
    let user_id: String = row.try_get("user_id")?;
    let instance_id: String = row.try_get("instance_id")?;
    let state: String = row.try_get("state")?;
    let closed_at: Option<i64> = row.try_get("closed_at")?;
    Ok(Hold {
        id: HoldId::parse(&id).ok_or_else(|| corrupt(format!("invalid hold id {id}")))?,
        user_id: UserId::parse(&user_id).map_err(|e| corrupt(e.to_string()))?,
        instance_id: InstanceId::parse(&instance_id).map_err(|e| corrupt(e.to_string()))?,
        model: row.try_get("model")?,
        amount: MicroUsd::from_micros(row.try_get("amount_micro_usd")?),
        request_id: row.try_get("request_id")?,
        state: HoldState::parse(&state)
            .ok_or_else(|| corrupt(format!("unknown hold state {state}")))?,
        entry_id: row.try_get("entry_id")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        closed_at: closed_at.map(from_millis).transpose()?,
    })
}
