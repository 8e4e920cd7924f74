//! The cell's files on the host side: its identity (`/etc/passwd` and the
//! few others it needs, written by the agent where the cell cannot write),
//! handing its trees to its uid, and measuring their disk use.
//!
//! The trees are the tenant's: walks never follow a symlink (they look at
//! each entry with `lstat` and change symlinks themselves with `lchown`),
//! and the ownership walk runs only before a start, when no process of the
//! cell is alive to swap a directory for a link under it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::sandbox::{Layout, IDENTITY_FILES};

/// At most this many entries are looked at in one walk.
const MAX_ENTRIES: usize = 2_000_000;

/// Writes the cell's `/etc/passwd`, `group`, `hosts`, `hostname` and
/// `resolv.conf` (slirp4netns's resolver), and makes its trees.
pub fn write_identity(layout: &Layout, uid: u32) -> std::io::Result<()> {
    let dir = layout.identity_dir();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)?;
    let home = layout.home();
    let contents: [String; 5] = [
        format!(
            "root:x:0:0:root:/root:/usr/sbin/nologin\nopenclaw:x:{uid}:{uid}:OpenClaw:{}:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
            home.display()
        ),
        format!("root:x:0:\nopenclaw:x:{uid}:\nnogroup:x:65534:\n"),
        "127.0.0.1 localhost openclaw\n::1 localhost ip6-localhost\n".to_owned(),
        "openclaw\n".to_owned(),
        "nameserver 10.0.2.3\n".to_owned(),
    ];
    for (name, text) in IDENTITY_FILES.iter().zip(contents) {
        write_file(&dir.join(name), text.as_bytes())?;
    }
    for tree in layout.writable() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&tree)?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

/// Gives every entry of `trees` (the trees themselves included) to `uid`
/// (as uid and gid), without following any symlink.
pub fn give_to(trees: &[PathBuf], uid: u32) -> std::io::Result<()> {
    for tree in trees {
        let meta = fs::symlink_metadata(tree)?;
        if !meta.is_dir() {
            return Err(std::io::Error::other(format!(
                "{} is not a directory",
                tree.display()
            )));
        }
        walk(tree, &mut |path, meta| {
            if meta.uid() != uid || meta.gid() != uid {
                std::os::unix::fs::lchown(path, Some(uid), Some(uid))?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Bytes of disk the trees use (allocated blocks), without following links.
pub fn disk_usage(trees: &[PathBuf]) -> u64 {
    let mut total = 0u64;
    for tree in trees {
        let _ = walk(tree, &mut |_, meta| {
            total = total.saturating_add(meta.blocks().saturating_mul(512));
            Ok(())
        });
    }
    total
}

/// Visits `root` and everything beneath it, depth first, with `lstat`
/// metadata; descends only into real directories.
fn walk(
    root: &Path,
    visit: &mut dyn FnMut(&Path, &fs::Metadata) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0usize;
    while let Some(path) = stack.pop() {
        seen += 1;
        if seen > MAX_ENTRIES {
            return Err(std::io::Error::other(format!(
                "more than {MAX_ENTRIES} entries under {}",
                root.display()
            )));
        }
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        visit(&path, &meta)?;
        if meta.is_dir() {
            for entry in fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_use_counts_files_but_not_what_a_link_points_at() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("state");
        fs::create_dir_all(tree.join("sub")).unwrap();
        fs::write(tree.join("sub/a"), vec![1u8; 64 * 1024]).unwrap();
        let outside = dir.path().join("big");
        fs::write(&outside, vec![1u8; 4 << 20]).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.path(), tree.join("dirlink")).unwrap();
        let used = disk_usage(&[tree]);
        assert!(used >= 64 * 1024, "{used}");
        assert!(used < 4 << 20, "the linked file is not counted: {used}");
    }
}
