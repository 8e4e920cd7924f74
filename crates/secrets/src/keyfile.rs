//! The embedded default's key file: when no key is configured and the store
//! is the local SQLite file, a key is generated on first start and kept at
//! `<data dir>/encryption.key` (64 hex characters, mode 0600).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::{EncryptionKey, KeyError};

/// The key file's name inside the data directory.
pub const KEY_FILE_NAME: &str = "encryption.key";

/// What [`load_or_create`] did.
#[derive(Debug)]
pub enum KeyFileOutcome {
    /// An existing key file was read.
    Loaded(PathBuf),
    /// A new key was generated and written.
    Created(PathBuf),
}

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("cannot use the key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file exists but holds no valid key.
    #[error("the key file {path} is invalid ({source}); restore it from a backup, or set OPENCLAW_ENCRYPTION_KEY")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: KeyError,
    },
    /// The file is readable by others.
    #[error(
        "the key file {path} is readable by other users (mode {mode:o}): run `chmod 600 {path}`"
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
}

/// Reads `<dir>/encryption.key`, or creates it with a fresh key (mode 0600,
/// written with `O_EXCL`, so two processes starting at once cannot both win).
pub fn load_or_create(dir: &Path) -> Result<(EncryptionKey, KeyFileOutcome), KeyFileError> {
    let path = dir.join(KEY_FILE_NAME);
    let io_err = |source| KeyFileError::Io {
        path: path.clone(),
        source,
    };
    match read(&path) {
        Ok(key) => return Ok((key, KeyFileOutcome::Loaded(path))),
        Err(KeyFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        Err(other) => return Err(other),
    }
    fs::create_dir_all(dir).map_err(io_err)?;
    let key = EncryptionKey::generate();
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    match created {
        Ok(mut file) => {
            let mut text = key.to_hex();
            text.push('\n');
            file.write_all(text.as_bytes()).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
            Ok((key, KeyFileOutcome::Created(path)))
        }
        // Another process created it between our read and our create.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read(&path).map(|key| (key, KeyFileOutcome::Loaded(path.clone())))
        }
        Err(e) => Err(io_err(e)),
    }
}

fn read(path: &Path) -> Result<EncryptionKey, KeyFileError> {
    let io_err = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(io_err)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io_err)?);
    EncryptionKey::parse("encryption.key", Some(&text)).map_err(|source| KeyFileError::Invalid {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_a_0600_key_and_the_second_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let (created, outcome) = load_or_create(dir.path()).unwrap();
        assert!(matches!(outcome, KeyFileOutcome::Created(_)));
        let mode = fs::metadata(dir.path().join(KEY_FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (loaded, outcome) = load_or_create(dir.path()).unwrap();
        assert!(matches!(outcome, KeyFileOutcome::Loaded(_)));
        assert_eq!(created.id(), loaded.id());
    }

    #[test]
    fn a_world_readable_or_corrupt_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(KeyFileError::TooOpen { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "garbage").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(KeyFileError::Invalid { .. })
        ));
    }
}
