//! SQLite's ledger writes: group commit through one writer task.
//!
//! SQLite has one writer at a time, so instead of many tasks taking turns at
//! the write connection (each paying for its own transaction and several
//! statements), entries are queued to one task. It takes whatever has queued
//! up (at most [`MAX_BATCH`]) and, inside one `BEGIN IMMEDIATE` transaction:
//!
//! 1. reads, with one statement each, what the batch touches: the entries
//!    already written under its idempotency keys, its users' balances, the
//!    entries it reverses, its metering cursors;
//! 2. decides every entry in order against that state, exactly as if they had
//!    committed one by one (replay, key conflict, reversal already made,
//!    cursor moved, floor less what model holds reserve), carrying the state
//!    from one entry to the next;
//! 3. writes the accepted entries, the new balances and cursors with one
//!    multi-row statement each, and commits once.
//!
//! Only after the commit does each caller get its answer, so an acknowledged
//! entry is stored. `BEGIN IMMEDIATE` takes SQLite's write lock before the
//! reads, so no other process can change what was read before the commit.
//! A database error aborts the batch; its entries are then retried one per
//! transaction, so one bad entry cannot fail the others. A panic while
//! applying a batch (a bug) is caught: that batch's callers get
//! [`StoreError::Corrupt`] saying so, nothing of it is committed (the
//! transaction is dropped), and the writer goes on with the next batch, so
//! the ledger never silently stops taking writes.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;

use clawplane_domain::LedgerEntry;
use futures::FutureExt;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::{entry_from_row, Appended, NewEntry, ENTRY_COLUMNS};
use crate::time::{now, to_millis};
use crate::StoreError;

/// Most entries applied in one transaction.
pub(crate) const MAX_BATCH: usize = 256;

struct Job {
    entry: NewEntry,
    reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// The handle to the writer task; cloned with the store.
#[derive(Clone, Debug)]
pub(crate) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer task on `pool` (the store's single write connection).
    /// It ends when every handle is dropped.
    pub(crate) fn start(pool: AnyPool) -> Self {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(pool, rx));
        GroupCommit { jobs }
    }

    /// Queues an entry and waits until its batch committed.
    pub(crate) async fn append(&self, entry: NewEntry) -> Result<Appended, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { entry, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(pool: AnyPool, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let entries: Vec<&NewEntry> = jobs.iter().map(|j| &j.entry).collect();
        let results = match AssertUnwindSafe(apply_with_retry(&pool, &entries))
            .catch_unwind()
            .await
        {
            Ok(results) => results,
            Err(_) => {
                tracing::error!(entries = entries.len(), "the ledger writer panicked on a batch; its entries were refused and the writer goes on");
                entries
                    .iter()
                    .map(|_| {
                        Err(StoreError::Corrupt(
                            "the ledger writer failed on this entry; nothing was written".into(),
                        ))
                    })
                    .collect()
            }
        };
        for (job, result) in jobs.into_iter().zip(results) {
            // The caller may have gone away; its entry is stored regardless.
            let _ = job.reply.send(result);
        }
    }
}

/// The batch in one transaction or, if that fails, each entry in its own.
async fn apply_with_retry(
    pool: &AnyPool,
    entries: &[&NewEntry],
) -> Vec<Result<Appended, StoreError>> {
    match apply_batch(pool, entries).await {
        Ok(results) => results,
        Err(batch_error) => {
            tracing::warn!(error = %batch_error, entries = entries.len(), "ledger batch failed; retrying its entries one by one");
            let mut results = Vec::with_capacity(entries.len());
            for entry in entries {
                results.push(match apply_batch(pool, &[entry]).await {
                    Ok(mut one) => one.pop().unwrap_or(Err(StoreError::Closed)),
                    Err(e) => Err(e),
                });
            }
            results
        }
    }
}

/// Most parameters per statement (SQLite allows 32766).
const MAX_PARAMS: usize = 30_000;

/// What became of one entry of the batch, before the writes.
enum Decision {
    /// Written by this batch.
    Accept { balance_after: i64, at: i64 },
    /// Answered with an entry written earlier (before or within this batch).
    Replay,
    /// Refused; nothing written.
    Refuse(StoreError),
}

/// Applies entries in one transaction. The outer error is a database failure
/// (nothing committed); the inner results are each entry's outcome.
async fn apply_batch(
    pool: &AnyPool,
    entries: &[&NewEntry],
) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;

    // 1. Read what the batch touches.
    let keys: Vec<String> = entries
        .iter()
        .map(|e| e.idempotency_key.as_str().to_owned())
        .collect();
    let mut known: HashMap<String, (LedgerEntry, String)> = HashMap::new();
    for row in select_in(
        &mut tx,
        &format!(
            "SELECT {ENTRY_COLUMNS}, request_hash FROM credit_ledger WHERE idempotency_key IN"
        ),
        &keys,
    )
    .await?
    {
        let entry = entry_from_row(&row)?;
        known.insert(
            entry.idempotency_key.clone(),
            (entry, row.try_get("request_hash")?),
        );
    }
    let users: Vec<String> = unique(entries.iter().map(|e| e.user_id.as_str().to_owned()));
    let mut balances: HashMap<String, i64> = HashMap::new();
    // Credits reserved by model holds: no floored burn may use them. Holds
    // are written between batches on this same connection, never during one.
    let mut held: HashMap<String, i64> = HashMap::new();
    for row in select_in(
        &mut tx,
        "SELECT user_id, balance_micro_usd, held_micro_usd FROM credit_balances WHERE user_id IN",
        &users,
    )
    .await?
    {
        let user: String = row.try_get("user_id")?;
        held.insert(user.clone(), row.try_get("held_micro_usd")?);
        balances.insert(user, row.try_get("balance_micro_usd")?);
    }
    let mut reversed: HashSet<i64> = HashSet::new();
    for id in entries.iter().filter_map(|e| e.reverses_entry_id) {
        let row = sqlx::query("SELECT 1 AS one FROM credit_ledger WHERE reverses_entry_id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if row.is_some() {
            reversed.insert(id);
        }
    }
    let mut cursors: HashMap<(String, String), i64> = HashMap::new();
    for entry in entries.iter().filter(|e| e.cursor.is_some()) {
        let c = entry
            .cursor
            .as_ref()
            .map(|c| (c.instance_id.to_string(), c.dimension.clone()));
        if let Some(id) = c {
            if cursors.contains_key(&id) {
                continue;
            }
            let row = sqlx::query("SELECT value_micro_usd FROM metering_cursors WHERE instance_id = $1 AND dimension = $2")
                .bind(id.0.clone())
                .bind(id.1.clone())
                .fetch_optional(&mut *tx)
                .await?;
            let value = match row {
                Some(r) => r.try_get("value_micro_usd")?,
                None => 0,
            };
            cursors.insert(id, value);
        }
    }

    // 2. Decide every entry in order, carrying the state forward.
    let mut batch_keys: HashMap<String, String> = HashMap::new(); // key -> request hash
    let mut decisions = Vec::with_capacity(entries.len());
    let mut changed_cursors: HashSet<(String, String)> = HashSet::new();
    let mut new_counts: HashMap<String, i64> = HashMap::new();
    for new in entries {
        let key = new.idempotency_key.as_str();
        if let Some((_, hash)) = known.get(key) {
            decisions.push(if *hash == new.request_hash {
                Decision::Replay
            } else {
                Decision::Refuse(StoreError::IdempotencyConflict)
            });
            continue;
        }
        if let Some(hash) = batch_keys.get(key) {
            decisions.push(if *hash == new.request_hash {
                Decision::Replay
            } else {
                Decision::Refuse(StoreError::IdempotencyConflict)
            });
            continue;
        }
        if let Some(id) = new.reverses_entry_id {
            if reversed.contains(&id) {
                decisions.push(Decision::Refuse(StoreError::NotReversible(id)));
                continue;
            }
        }
        if let Some(c) = &new.cursor {
            let id = (c.instance_id.to_string(), c.dimension.clone());
            if cursors.get(&id).copied().unwrap_or(0) != c.from.micros() {
                decisions.push(Decision::Refuse(StoreError::Contended));
                continue;
            }
        }
        let user = new.user_id.as_str().to_owned();
        let balance = balances.get(&user).copied().unwrap_or(0);
        let Some(after) = balance.checked_add(new.amount.micros()) else {
            decisions.push(Decision::Refuse(StoreError::Corrupt(
                "balance overflow".into(),
            )));
            continue;
        };
        let reserved = held.get(&user).copied().unwrap_or(0);
        if new
            .floor
            .is_some_and(|floor| after.saturating_sub(reserved) < floor.micros())
        {
            decisions.push(Decision::Refuse(StoreError::InsufficientCredits {
                balance: clawplane_domain::MicroUsd::from_micros(balance.saturating_sub(reserved)),
            }));
            continue;
        }
        // Accepted: carry the state forward.
        balances.insert(user.clone(), after);
        *new_counts.entry(user).or_default() += 1;
        batch_keys.insert(key.to_owned(), new.request_hash.clone());
        if let Some(id) = new.reverses_entry_id {
            reversed.insert(id);
        }
        if let Some(c) = &new.cursor {
            let id = (c.instance_id.to_string(), c.dimension.clone());
            cursors.insert(id.clone(), c.to.micros());
            changed_cursors.insert(id);
        }
        decisions.push(Decision::Accept {
            balance_after: after,
            at: to_millis(new.at.unwrap_or_else(now)),
        });
    }

    // 3. Write, then commit once.
    let accepted: Vec<(&NewEntry, i64, i64)> = entries
        .iter()
        .zip(&decisions)
        .filter_map(|(e, d)| match d {
            Decision::Accept { balance_after, at } => Some((*e, *balance_after, *at)),
            _ => None,
        })
        .collect();
    for chunk in accepted.chunks(MAX_PARAMS / 10) {
        let values = placeholders(chunk.len(), 10);
        let sql = format!(
            "INSERT INTO credit_ledger (user_id, kind, source, amount_micro_usd, balance_after_micro_usd, \
             idempotency_key, request_hash, reverses_entry_id, meta, created_at) VALUES {values} RETURNING {ENTRY_COLUMNS}"
        );
        let mut q = sqlx::query(&sql);
        for (e, balance_after, at) in chunk {
            q = q
                .bind(e.user_id.as_str().to_owned())
                .bind(e.kind.as_str())
                .bind(e.source.clone())
                .bind(e.amount.micros())
                .bind(*balance_after)
                .bind(e.idempotency_key.as_str().to_owned())
                .bind(e.request_hash.clone())
                .bind(e.reverses_entry_id)
                .bind(e.meta.to_string())
                .bind(*at);
        }
        for row in q.fetch_all(&mut *tx).await? {
            let entry = entry_from_row(&row)?;
            known.insert(entry.idempotency_key.clone(), (entry, String::new()));
        }
    }
    let touched: Vec<(&String, &i64)> = new_counts.iter().collect();
    let at = to_millis(now());
    for chunk in touched.chunks(MAX_PARAMS / 4) {
        let sql = format!(
            "INSERT INTO credit_balances (user_id, balance_micro_usd, entry_count, updated_at) VALUES {} \
             ON CONFLICT (user_id) DO UPDATE SET balance_micro_usd = excluded.balance_micro_usd, \
             entry_count = credit_balances.entry_count + excluded.entry_count, updated_at = excluded.updated_at",
            placeholders(chunk.len(), 4)
        );
        let mut q = sqlx::query(&sql);
        for (user, count) in chunk {
            q = q
                .bind((*user).clone())
                .bind(balances[*user])
                .bind(**count)
                .bind(at);
        }
        q.execute(&mut *tx).await?;
    }
    for id in &changed_cursors {
        sqlx::query(
            "INSERT INTO metering_cursors (instance_id, dimension, value_micro_usd, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (instance_id, dimension) DO UPDATE SET value_micro_usd = excluded.value_micro_usd, \
             updated_at = excluded.updated_at",
        )
        .bind(id.0.clone())
        .bind(id.1.clone())
        .bind(cursors[id])
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;

    Ok(entries
        .iter()
        .zip(decisions)
        .map(|(e, decision)| {
            let key = e.idempotency_key.as_str();
            let written = || {
                known
                    .get(key)
                    .map(|(entry, _)| entry.clone())
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("entry {key} vanished from its batch"))
                    })
            };
            match decision {
                Decision::Accept { .. } => written().map(Appended::Applied),
                Decision::Replay => written().map(Appended::Replayed),
                Decision::Refuse(err) => Err(err),
            }
        })
        .collect())
}

/// `SELECT ... WHERE col IN ($1, ...)`, chunked under the parameter limit.
async fn select_in(
    tx: &mut Transaction<'static, Any>,
    prefix: &str,
    values: &[String],
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    let mut rows = Vec::new();
    for chunk in values.chunks(MAX_PARAMS) {
        let list = (1..=chunk.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("{prefix} ({list})");
        let mut q: Query<'_, Any, AnyArguments<'_>> = sqlx::query(&sql);
        for v in chunk {
            q = q.bind(v.clone());
        }
        rows.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(rows)
}

/// `($1, $2), ($3, $4)` for `rows` rows of `width` values.
fn placeholders(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn unique(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    values.filter(|v| seen.insert(v.clone())).collect()
}
