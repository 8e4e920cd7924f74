//! Opening paths of a hostile tree without ever following a symlink.
//!
//! The state directory is written by the tenant, who can plant a symlink anywhere in it, or
//! swap a file or a directory for one between the scan and the read, hoping that this agent
//! (root, outside the cell) reads or writes a host file through it. So every path below a root
//! is resolved here one component at a time from a directory handle, each step `openat` with
//! `O_NOFOLLOW` (and `O_DIRECTORY` for directories): a symlink at any depth makes the open fail
//! (`ELOOP`/`ENOTDIR`) instead of being followed. A file is opened `O_NONBLOCK|O_NOCTTY` (a FIFO
//! swapped in cannot block the open, a terminal cannot become ours) and is then kept only if
//! `fstat` says it is a regular file, so nothing else is ever read.
//!
//! The root itself is the operator's path (its parent is not the tenant's to change): it is
//! canonicalized once, so an operator's symlink above it is fine, then opened `O_NOFOLLOW`.
//!
//! Not covered: hard links. A tenant can only hard-link files it could read anyway while
//! `fs.protected_hardlinks` is 1 (the default on Debian), which the host must keep.

use std::{
    fs::File,
    io,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    path::{Path, PathBuf},
};

use rustix::{
    fs::{openat, Mode, OFlags, CWD},
    io::Errno,
};

/// How directories are opened: never through a symlink, never inherited by children.
const DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// How files are opened for reading.
const READ: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// A directory handle with the canonical path it was opened at (for messages and SQLite).
#[derive(Debug)]
pub(crate) struct Root {
    pub(crate) path: PathBuf,
    pub(crate) fd: OwnedFd,
}

impl Root {
    /// Canonicalizes `path` and opens it as a directory, refusing a symlink in its last step.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let path = std::fs::canonicalize(path)?;
        let fd = openat(CWD, &path, DIR, Mode::empty())?;
        Ok(Self { path, fd })
    }

    /// `rel` (plain `/`-separated components) beneath this root, as a directory; `None` if it,
    /// or a directory on its way, is gone or is not a directory (a symlink included).
    pub(crate) fn dir(&self, rel: &str) -> io::Result<Option<OwnedFd>> {
        let mut dir = openat(&self.fd, ".", DIR, Mode::empty())?;
        for name in rel.split('/').filter(|c| !c.is_empty()) {
            match open_dir_at(dir.as_fd(), name)? {
                Some(next) => dir = next,
                None => return Ok(None),
            }
        }
        Ok(Some(dir))
    }

    /// `rel` beneath this root, opened for reading; `None` unless it is (still) a regular file
    /// reached without a symlink.
    pub(crate) fn file(&self, rel: &str) -> io::Result<Option<File>> {
        let (parent, name) = split(rel);
        match self.dir(parent)? {
            Some(dir) => open_file_at(dir.as_fd(), name),
            None => Ok(None),
        }
    }
}

/// `rel` as (parent directory, last name).
pub(crate) fn split(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

/// `dir/name` as a directory, without following a symlink; `None` if it is gone or not one.
pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<OwnedFd>> {
    missing_as_none(openat(dir, name, DIR, Mode::empty()))
}

/// `dir/name` for reading; `None` if it is gone, a symlink, or anything but a regular file.
pub(crate) fn open_file_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<File>> {
    let Some(fd) = missing_as_none(openat(dir, name, READ, Mode::empty()))? else {
        return Ok(None);
    };
    let file = File::from(fd);
    Ok(file.metadata()?.is_file().then_some(file))
}

/// The errors that mean "not there as the kind asked for": gone (`ENOENT`), a symlink
/// (`ELOOP`), not a directory (`ENOTDIR`), a socket (`ENXIO`).
fn missing_as_none<T>(result: rustix::io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR | Errno::NXIO) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::{io::Read, os::unix::fs::symlink, time::Duration};

    use super::*;

    /// A root with `d/f` ("inside") and, outside it, `host/f` ("SECRET").
    fn fixture() -> (tempfile::TempDir, Root) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("root/d")).unwrap();
        std::fs::write(tmp.path().join("root/d/f"), "inside").unwrap();
        std::fs::create_dir(tmp.path().join("host")).unwrap();
        std::fs::write(tmp.path().join("host/f"), "SECRET").unwrap();
        let root = Root::open(&tmp.path().join("root")).unwrap();
        (tmp, root)
    }

    fn read(file: Option<File>) -> Option<String> {
        let mut text = String::new();
        file?.read_to_string(&mut text).unwrap();
        Some(text)
    }

    #[test]
    fn a_regular_file_is_opened_and_a_file_swapped_for_a_symlink_is_not() {
        let (tmp, root) = fixture();
        assert_eq!(read(root.file("d/f").unwrap()).as_deref(), Some("inside"));
        std::fs::remove_file(tmp.path().join("root/d/f")).unwrap();
        symlink(tmp.path().join("host/f"), tmp.path().join("root/d/f")).unwrap();
        assert_eq!(read(root.file("d/f").unwrap()), None);
        assert_eq!(read(root.file("missing").unwrap()), None);
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_is_not_walked_through() {
        let (tmp, root) = fixture();
        std::fs::rename(tmp.path().join("root/d"), tmp.path().join("root/old")).unwrap();
        symlink(tmp.path().join("host"), tmp.path().join("root/d")).unwrap();
        assert_eq!(read(root.file("d/f").unwrap()), None);
        assert!(root.dir("d").unwrap().is_none());
        assert!(root.dir("old").unwrap().is_some());
    }

    #[test]
    fn a_fifo_a_socket_and_a_directory_are_not_opened_as_files() {
        let (tmp, root) = fixture();
        rustix::fs::mkfifoat(&root.fd, "fifo", Mode::from_raw_mode(0o600)).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(tmp.path().join("root/sock")).unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let results = ["fifo", "sock", "d"].map(|name| root.file(name).unwrap().is_none());
            done.send(results).unwrap();
        });
        let results = finished
            .recv_timeout(Duration::from_secs(10))
            .expect("opening a FIFO must not block");
        assert_eq!(results, [true, true, true]);
    }
}
