//! Retention: which backups to keep, and pruning the rest.
//!
//! Kept: the newest `keep_last` backups, plus the newest backup of each of the last
//! `keep_daily_days` UTC calendar days (today included). The newest backup is always kept, so
//! a retention of zeros cannot empty the store.
//!
//! Pruning deletes the manifests that are not kept first, and only then the blobs that no kept
//! manifest references, so an interrupted prune leaves unreferenced blobs (removed by the next
//! prune) and never a manifest whose blobs are gone. If any kept manifest cannot be read,
//! nothing is deleted.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use futures::{stream, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::{
    error::BackupError,
    manifest::{self, Entry},
    store::BackupStore,
};

/// Objects a prune will list in the blob area at most.
const MAX_BLOBS: usize = 10_000_000;

/// How many backups to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// The newest N backups are kept (default 10).
    pub keep_last: usize,
    /// For each of the last D UTC days, that day's newest backup is kept (default 7).
    pub keep_daily_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep_last: 10,
            keep_daily_days: 7,
        }
    }
}

/// What a prune did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Backups kept, newest first.
    pub kept: Vec<String>,
    /// Backups deleted, newest first.
    pub deleted: Vec<String>,
    /// Blobs deleted because no kept backup references them.
    pub blobs_deleted: u64,
    /// Their total size.
    pub bytes_freed: u64,
}

impl Retention {
    /// The ids to keep out of `ids` (each paired with its creation time), judged at `now`.
    pub fn select(&self, ids: &[(String, DateTime<Utc>)], now: DateTime<Utc>) -> BTreeSet<String> {
        let mut newest_first: Vec<&(String, DateTime<Utc>)> = ids.iter().collect();
        newest_first.sort_by(|a, b| b.0.cmp(&a.0));
        let mut keep: BTreeSet<String> = newest_first
            .iter()
            .take(self.keep_last.max(1))
            .map(|(id, _)| id.clone())
            .collect();
        let today = now.date_naive();
        let mut days_seen = HashSet::new();
        for (id, at) in newest_first {
            let day = at.date_naive();
            let age = (today - day).num_days();
            if (0..i64::from(self.keep_daily_days)).contains(&age) && days_seen.insert(day) {
                keep.insert(id.clone());
            }
        }
        keep
    }
}

impl BackupStore {
    /// Applies `retention` now: see the module documentation for the order of deletions.
    pub async fn prune(&self, retention: &Retention) -> Result<PruneReport, BackupError> {
        let _guard = self.inner.lock.lock().await;
        let inner = &self.inner;
        let ids: Vec<(String, DateTime<Utc>)> = inner
            .manifest_ids()
            .await?
            .into_iter()
            .filter_map(|id| manifest::id_time(&id).map(|t| (id, t)))
            .collect();
        let keep = retention.select(&ids, Utc::now());

        // Every kept manifest must be readable before anything is deleted.
        let kept_manifests: Vec<manifest::Manifest> = stream::iter(keep.iter().cloned())
            .map(|id| async move { inner.manifest(&id).await })
            .buffered(8)
            .try_collect()
            .await?;
        let referenced: HashSet<String> = kept_manifests
            .iter()
            .flat_map(|m| m.entries.iter())
            .filter_map(|e| match e {
                Entry::File { sha256, .. } => Some(sha256.clone()),
                _ => None,
            })
            .collect();

        let mut deleted: Vec<String> = ids
            .iter()
            .map(|(id, _)| id.clone())
            .filter(|id| !keep.contains(id))
            .collect();
        deleted.reverse();
        for id in &deleted {
            inner.delete(&inner.manifest_key(id)).await?;
        }

        let unreferenced: Vec<_> = inner
            .list("blobs", MAX_BLOBS)
            .await?
            .into_iter()
            .filter(|(key, _)| {
                key.filename()
                    .is_some_and(|name| !referenced.contains(name))
            })
            .collect();
        let blobs_deleted = unreferenced.len() as u64;
        let bytes_freed = unreferenced.iter().map(|(_, size)| size).sum();
        stream::iter(unreferenced)
            .map(|(key, _)| async move { inner.delete(&key).await })
            .buffer_unordered(8)
            .try_collect::<()>()
            .await?;

        let mut kept: Vec<String> = keep.into_iter().collect();
        kept.reverse();
        tracing::info!(
            instance = %inner.instance, kept = kept.len(), deleted = deleted.len(),
            blobs_deleted, bytes_freed, "backups pruned"
        );
        Ok(PruneReport {
            kept,
            deleted,
            blobs_deleted,
            bytes_freed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn backups(times: &[&str]) -> Vec<(String, DateTime<Utc>)> {
        times
            .iter()
            .map(|t| {
                let t = at(t);
                (manifest::new_id(t, None), t)
            })
            .collect()
    }

    #[test]
    fn keeps_the_last_n_plus_the_newest_of_each_recent_day() {
        let all = backups(&[
            "2026-11-20T08:00:00Z", // 4 days ago: outside 3 days, not in the last 2
            "2026-11-22T08:00:00Z", // 2 days ago, older of the day
            "2026-11-22T20:00:00Z", // 2 days ago, newest of the day: kept (daily)
            "2026-11-23T09:00:00Z", // yesterday: kept (daily)
            "2026-11-24T06:00:00Z", // today: kept (last 2, daily)
            "2026-11-24T07:00:00Z", // today, newest: kept (last 2, daily)
        ]);
        let r = Retention {
            keep_last: 2,
            keep_daily_days: 3,
        };
        let keep = r.select(&all, at("2026-11-24T12:00:00Z"));
        let expected: BTreeSet<String> = [2, 3, 4, 5].iter().map(|i| all[*i].0.clone()).collect();
        assert_eq!(keep, expected);
    }

    #[test]
    fn the_newest_backup_is_kept_even_by_a_retention_of_zeros() {
        let all = backups(&["2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"]);
        let r = Retention {
            keep_last: 0,
            keep_daily_days: 0,
        };
        let keep = r.select(&all, at("2026-11-24T00:00:00Z"));
        assert_eq!(keep.into_iter().collect::<Vec<_>>(), vec![all[1].0.clone()]);
    }
}
