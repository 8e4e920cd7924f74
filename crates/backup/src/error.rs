//! The one error type of the backup crate.
//!
//! Policy: every message names what failed (the store as its URL, the path, the backup id) and,
//! where there is one, what to do about it. No message contains a secret: the S3 secret key is
//! only ever held in a `SecretString`, URLs with credentials in them are refused at parse time,
//! and messages coming from the object store client pass through [`Redactor`] before they are
//! kept, in case a server echoes something it should not.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

/// Everything that can go wrong while backing up, listing, restoring or pruning.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The target URL or its S3 settings are unusable.
    #[error("invalid backup target {url}: {reason}")]
    InvalidTarget {
        /// The URL as given (URLs with credentials in them are shown without them).
        url: String,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// An instance id, trigger or backup id that cannot be used as part of an object key.
    #[error("invalid {what} {value:?}: {rule}")]
    InvalidName {
        /// `instance id`, `trigger` or `backup id`.
        what: &'static str,
        /// The rejected value.
        value: String,
        /// The accepted form.
        rule: &'static str,
    },

    /// The store did not answer, or refused a write, when it was opened.
    #[error(
        "the backup store {store} is unreachable or not writable: {message} \
         (check the URL, the endpoint, the credentials and that the bucket exists)"
    )]
    Unreachable {
        /// The store's URL, without secrets.
        store: String,
        /// The client's error, redacted.
        message: String,
    },

    /// One object store operation failed after the store was opened.
    #[error("the backup store {store} failed to {op} {key}: {message}")]
    Store {
        /// The store's URL, without secrets.
        store: String,
        /// `read`, `write`, `list` or `delete`.
        op: &'static str,
        /// The object key involved.
        key: String,
        /// The client's error, redacted.
        message: String,
    },

    /// A local file or directory could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done, e.g. `read the state directory`.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// `VACUUM INTO` of a SQLite database failed.
    #[error("cannot snapshot the SQLite database {path}: {message} (is it locked by another process for longer than the busy timeout?)")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        message: String,
    },

    /// The quiesce hook could not suspend or resume the gateway.
    #[error("the gateway could not be {action} around the snapshot: {message}")]
    Quiesce {
        /// `suspended` or `resumed`.
        action: &'static str,
        /// The hook's error.
        message: String,
    },

    /// The requested backup does not exist.
    #[error("backup {id} not found in {store}; `list` shows the backups that exist")]
    NotFound {
        /// The store's URL.
        store: String,
        /// The id asked for.
        id: String,
    },

    /// There is no backup at all for this instance.
    #[error("no backup exists in {store} for instance {instance}")]
    NoBackups {
        /// The store's URL.
        store: String,
        /// The instance id.
        instance: String,
    },

    /// A manifest or blob is damaged: unparsable, or content that does not match its hash.
    #[error("backup {id} is damaged: {reason}; restore an older backup")]
    Corrupt {
        /// The backup id.
        id: String,
        /// What does not match.
        reason: String,
    },

    /// A manifest entry whose path would land outside the restore directory.
    #[error("backup {id} holds the unsafe path {path:?} ({reason}); refusing to restore it")]
    UnsafePath {
        /// The backup id.
        id: String,
        /// The offending path as written in the manifest.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// `restore` was pointed at a directory that already has content.
    #[error("the restore directory {0} is not empty; restore into a new or empty directory")]
    TargetNotEmpty(PathBuf),

    /// The state directory holds more than `BackupOptions::max_total_bytes` in included files.
    #[error(
        "the state directory {path} holds {bytes} bytes of files, more than the backup limit of \
         {limit} bytes; remove files from it (or exclude them), or raise BackupOptions::max_total_bytes"
    )]
    TooLarge {
        /// The state directory.
        path: PathBuf,
        /// What its included files add up to.
        bytes: u64,
        /// The limit.
        limit: u64,
    },

    /// The state directory to back up does not exist or is not a directory.
    #[error("the state directory {0} does not exist or is not a directory")]
    NoStateDir(PathBuf),
}

impl BackupError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Removes secrets from error text produced by the object store client.
///
/// The S3 secret key is never sent to the server (requests are signed), so it should never
/// appear; this is the belt to that pair of braces.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<SecretString>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    pub(crate) fn new(secrets: impl IntoIterator<Item = SecretString>) -> Self {
        Self {
            secrets: secrets
                .into_iter()
                .filter(|s| !s.expose_secret().is_empty())
                .collect(),
        }
    }

    /// The error's text with its causes (object_store's `Display` leaves out e.g. "connection
    /// refused"), secrets removed.
    pub(crate) fn clean_error(&self, error: &(dyn std::error::Error + 'static)) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        for _ in 0..8 {
            let Some(cause) = source else { break };
            let line = cause.to_string();
            if !text.contains(&line) {
                text = format!("{text}: {line}");
            }
            source = cause.source();
        }
        self.clean(text)
    }

    pub(crate) fn clean(&self, message: impl std::fmt::Display) -> String {
        let mut text = message.to_string();
        for secret in &self.secrets {
            text = text.replace(secret.expose_secret(), "[REDACTED]");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactor_removes_every_occurrence_of_a_secret() {
        let r = Redactor::new([SecretString::from("s3cr3t"), SecretString::from("")]);
        assert_eq!(r.clean("a s3cr3t b s3cr3t"), "a [REDACTED] b [REDACTED]");
    }
}
