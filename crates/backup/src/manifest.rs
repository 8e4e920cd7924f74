//! The manifest: one JSON document per backup, naming every entry of the snapshot and the blob
//! that holds each file's content.
//!
//! A manifest is the commit record of a backup: it is written after every blob it references, so
//! a backup that dies half-way leaves only unreferenced blobs (removed by the next prune) and
//! never a manifest that points at missing data. Ids sort by time, so the newest backup is the
//! greatest id: `20261124T061500.123Z-1a2b3c4d` (UTC, milliseconds, 32 random bits).
//!
//! Example:
//!
//! ```json
//! {
//!   "format": 1, "id": "20261124T061500.123Z-1a2b3c4d", "instance": "inst-1",
//!   "created_at": "2026-11-24T06:15:00.456Z", "started_at": "2026-11-24T06:15:00.123Z",
//!   "trigger": "scheduled", "clawplane_version": "0.1.0", "fingerprint": "9f2c...",
//!   "files": 2, "bytes": 90112,
//!   "entries": [
//!     {"kind": "dir", "path": "state", "mode": "0700"},
//!     {"kind": "file", "path": "state/openclaw.sqlite", "mode": "0600", "size": 90000,
//!      "sha256": "ab12...", "sqlite": true,
//!      "source": {"size": 4096, "mtime_ns": 1795500000000000000, "wal": [412000, 1795500000100000000]}},
//!     {"kind": "symlink", "path": "workspace/current", "target": "projects/a"}
//!   ]
//! }
//! ```

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest format this crate writes and reads.
pub const FORMAT: u32 = 1;

/// One backup's full record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Always 1 for this version; a reader refuses other values.
    pub format: u32,
    /// The backup id (also the object name: `manifests/<id>.json`).
    pub id: String,
    /// The instance whose state this is.
    pub instance: String,
    /// When the manifest was written.
    pub created_at: DateTime<Utc>,
    /// When the state directory scan began; files modified within a few seconds before it
    /// are re-read by the next backup even if their size and mtime look unchanged.
    pub started_at: DateTime<Utc>,
    /// Why the backup was taken: `manual`, `scheduled`, `before-stop`, `before-restart`.
    pub trigger: String,
    /// The version of clawplane that wrote it.
    pub clawplane_version: String,
    /// SHA-256 over every entry's path, kind, mode and source size and mtime.
    pub fingerprint: String,
    /// Number of file entries.
    pub files: u64,
    /// Sum of the file entries' sizes (as stored: a SQLite file's size is its snapshot's).
    pub bytes: u64,
    /// Directories, files and symlinks, sorted by path.
    pub entries: Vec<Entry>,
}

/// One item of the snapshot. Paths are relative, `/`-separated, and never contain `.` or `..`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A directory, recorded so that empty ones and their modes come back.
    Dir {
        /// Relative path.
        path: String,
        /// Permission bits.
        #[serde(with = "octal")]
        mode: u32,
    },
    /// A regular file (or a SQLite database, stored as its `VACUUM INTO` snapshot).
    File {
        /// Relative path.
        path: String,
        /// Permission bits.
        #[serde(with = "octal")]
        mode: u32,
        /// Size of the stored content.
        size: u64,
        /// SHA-256 of the stored content, lowercase hex: the blob's name.
        sha256: String,
        /// Whether the content is a SQLite snapshot rather than a byte copy.
        #[serde(default)]
        sqlite: bool,
        /// The source file's metadata when it was scanned.
        source: SourceStat,
    },
    /// A symbolic link, recorded as its target text and never followed.
    Symlink {
        /// Relative path.
        path: String,
        /// The link's target, as `readlink` returned it.
        target: String,
    },
}

impl Entry {
    /// The entry's relative path.
    pub fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => {
                path
            }
        }
    }
}

/// Size and modification time of a source file, plus those of its `-wal` file when it has one
/// (a WAL database's new commits change only the `-wal` until a checkpoint).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// `(size, mtime_ns)` of the `-wal` file beside it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<(u64, i64)>,
}

/// What `list` returns for each backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSummary {
    /// The backup id, sortable by time.
    pub id: String,
    /// When the backup was written.
    pub created_at: DateTime<Utc>,
    /// Why it was taken.
    pub trigger: String,
    /// Number of files.
    pub files: u64,
    /// Total size of the files as stored.
    pub bytes: u64,
}

impl Manifest {
    /// The summary of this backup.
    pub fn summary(&self) -> BackupSummary {
        BackupSummary {
            id: self.id.clone(),
            created_at: self.created_at,
            trigger: self.trigger.clone(),
            files: self.files,
            bytes: self.bytes,
        }
    }
}

/// A new backup id for `now`, strictly greater than `after` (the latest id) even if the clock
/// went backwards or two backups start in the same millisecond.
pub(crate) fn new_id(now: DateTime<Utc>, after: Option<&str>) -> String {
    let mut stamp = now;
    if let Some(prev) = after.and_then(id_time) {
        if stamp <= prev {
            stamp = prev + chrono::Duration::milliseconds(1);
        }
    }
    let random: u32 = rand::thread_rng().gen();
    format!("{}-{random:08x}", stamp.format("%Y%m%dT%H%M%S%.3fZ"))
}

/// The time encoded in a backup id.
pub(crate) fn id_time(id: &str) -> Option<DateTime<Utc>> {
    let stamp = id.split('-').next()?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ")
        .ok()
        .map(|t| t.and_utc())
}

/// Whether `id` has the shape this crate generates (so it is safe inside an object key).
pub(crate) fn valid_id(id: &str) -> bool {
    id.len() <= 64
        && id_time(id).is_some()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// One fingerprint line per entry, hashed: anything that would change the snapshot's content
/// (or the mode) changes the fingerprint. Only metadata is read, so this is cheap.
pub(crate) fn fingerprint<'a>(items: impl Iterator<Item = FingerprintItem<'a>>) -> String {
    let mut hasher = Sha256::new();
    for item in items {
        let line = serde_json::to_string(&item).unwrap_or_default();
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

/// The part of a scanned entry that the fingerprint covers.
#[derive(Serialize)]
pub(crate) struct FingerprintItem<'a> {
    pub(crate) path: &'a str,
    pub(crate) kind: &'static str,
    pub(crate) mode: u32,
    pub(crate) source: SourceStat,
    pub(crate) target: Option<&'a str>,
}

/// Modes as 4-digit octal strings ("0600"), which is how people read them.
mod octal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:04o}", mode & 0o7777))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let text = String::deserialize(d)?;
        u32::from_str_radix(&text, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid mode {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_never_go_backwards() {
        let t = "2026-11-24T06:15:00.123Z".parse::<DateTime<Utc>>().unwrap();
        let a = new_id(t, None);
        assert!(a.starts_with("20261124T061500.123Z-"), "{a}");
        assert!(valid_id(&a));
        let b = new_id(t, Some(&a));
        assert!(b > a, "{b} > {a}");
        let c = new_id(t - chrono::Duration::hours(1), Some(&b));
        assert!(c > b);
        assert!(!valid_id("../x"));
        assert!(!valid_id("20261124T061500.123Z-a/b"));
    }

    #[test]
    fn modes_round_trip_as_octal_text() {
        let e = Entry::Dir {
            path: "d".into(),
            mode: 0o700,
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, r#"{"kind":"dir","path":"d","mode":"0700"}"#);
        assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), e);
        assert!(serde_json::from_str::<Entry>(r#"{"kind":"dir","path":"d","mode":"99"}"#).is_err());
    }
}
