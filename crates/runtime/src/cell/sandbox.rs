//! The command line that starts a program in a cell:
//!
//! ```text
//! sh -c JOIN sh <cgroup.procs files> --        # joins the cell's cgroups, then execs
//!   setpriv --pdeathsig KILL --                 # dies with the agent
//!   prlimit --nofile --nproc --core --          # the cell's rlimits
//!   bwrap <namespaces and mounts> --            # the sandbox
//!   setpriv --reuid U --regid U ... --          # the cell's uid, no capabilities
//!   node openclaw.mjs gateway run
//! ```
//!
//! Every step is an ordinary program that execs the next, so the pid the
//! agent spawned is the sandbox's (bwrap's) and joining the cgroup happens
//! before anything forks. The environment given to the command passes
//! through unchanged and is built from scratch by the caller; no secret is
//! ever on this command line.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::CellSettings;
use crate::install::Installation;

/// Joins every cgroup named before `--`, then execs the rest.
const JOIN: &str = r#"while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do echo "$$" > "$1" || exit 125; shift; done; shift; exec "$@""#;

/// Where a runtime's files are, and which of them the cell sees.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The runtime's directory (never visible as a whole in the cell).
    pub root: PathBuf,
    /// Read-only trees: the Node and OpenClaw installs.
    pub read_only: Vec<PathBuf>,
}

impl Layout {
    /// The layout of the runtime in `root` running `installation`.
    pub fn new(root: PathBuf, installation: &Installation) -> Layout {
        Layout {
            root,
            read_only: installation.roots(),
        }
    }

    /// The gateway's state directory (read-write in the cell, backed up).
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("openclaw")
    }

    /// The gateway's home (read-write in the cell).
    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    /// The trees the cell writes.
    pub fn writable(&self) -> Vec<PathBuf> {
        vec![self.state_dir(), self.home()]
    }

    /// The files the agent writes for the cell (`/etc/passwd` and others),
    /// outside anything the cell can write.
    pub fn identity_dir(&self) -> PathBuf {
        self.root.join("cell")
    }
}

/// Files of the host's `/etc` a gateway and its tools need, when present.
/// Everything else of `/etc` (keys, other services' settings) stays out.
const ETC: &[&str] = &[
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "gai.conf",
    "host.conf",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "magic",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "profile",
    "protocols",
    "python3",
    "python3.11",
    "services",
    "ssl",
    "timezone",
];

/// The files of [`super::files::write_identity`], mounted over `/etc`.
pub const IDENTITY_FILES: &[&str] = &["passwd", "group", "hosts", "hostname", "resolv.conf"];

/// The whole command line (program first) that runs `inner` in the cell.
pub fn argv(
    layout: &Layout,
    settings: &CellSettings,
    cgroup_procs: &[PathBuf],
    inner: &[OsString],
) -> Vec<OsString> {
    let mut a = Args::default();
    a.push_all(["/bin/sh", "-c", JOIN, "sh"]);
    for procs in cgroup_procs {
        a.push(procs);
    }
    a.push("--");
    a.push_all(["setpriv", "--pdeathsig", "KILL", "--"]);
    let nofile = settings.open_files;
    let nproc = settings.pids;
    a.push_all(["prlimit"]);
    a.push(format!("--nofile={nofile}:{nofile}"));
    a.push(format!("--nproc={nproc}:{nproc}"));
    a.push_all(["--core=0:0", "--"]);
    bwrap(&mut a, layout, settings);
    a.push("--");
    let id = settings.uid.to_string();
    a.push_all(["setpriv", "--reuid"]);
    a.push(&id);
    a.push("--regid");
    a.push(&id);
    a.push_all([
        "--clear-groups",
        "--no-new-privs",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]);
    for part in inner {
        a.push(part);
    }
    a.0
}

fn bwrap(a: &mut Args, layout: &Layout, settings: &CellSettings) {
    a.push_all([
        "bwrap",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "openclaw",
        "--ro-bind",
        "/usr",
        "/usr",
    ]);
    for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        let path = Path::new(top);
        match std::fs::read_link(path) {
            Ok(target) => {
                a.push("--symlink");
                a.push(target);
                a.push(top);
            }
            Err(_) if path.is_dir() => {
                a.push_all(["--ro-bind", top, top]);
            }
            Err(_) => {}
        }
    }
    a.push_all(["--perms", "0755", "--dir", "/etc"]);
    for name in ETC {
        let path = Path::new("/etc").join(name);
        if path.exists() {
            a.push("--ro-bind");
            a.push(&path);
            a.push(&path);
        }
    }
    for name in IDENTITY_FILES {
        a.push("--ro-bind");
        a.push(layout.identity_dir().join(name));
        a.push(Path::new("/etc").join(name));
    }
    a.push_all(["--proc", "/proc", "--dev", "/dev"]);
    // A private /tmp, bounded (it is memory, charged to the cell too).
    let tmp_size = (settings.memory_bytes / 2).max(64 << 20);
    a.push_all(["--perms", "1777", "--size"]);
    a.push(tmp_size.to_string());
    a.push_all(["--tmpfs", "/tmp"]);
    let mut made: Vec<PathBuf> = Vec::new();
    for (tree, writable) in layout.read_only.iter().map(|p| (p, false)).chain(
        layout
            .writable()
            .iter()
            .map(|p| (p, true))
            .collect::<Vec<_>>(),
    ) {
        // Parents are made traversable but not listable, whatever their
        // mode on the host, so the cell learns nothing of their siblings.
        let mut parents: Vec<&Path> = tree.ancestors().skip(1).collect();
        parents.reverse();
        for parent in parents {
            let covered = parent == Path::new("/")
                || parent.starts_with("/usr")
                || parent == Path::new("/tmp")
                || made.iter().any(|m| m == parent);
            if !covered {
                a.push_all(["--perms", "0711", "--dir"]);
                a.push(parent);
                made.push(parent.to_path_buf());
            }
        }
        a.push(if writable { "--bind" } else { "--ro-bind" });
        a.push(tree);
        a.push(tree);
        made.push(tree.clone());
    }
    a.push("--chdir");
    a.push(layout.home());
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push(&mut self, part: impl AsRef<std::ffi::OsStr>) {
        self.0.push(part.as_ref().to_owned());
    }

    fn push_all<const N: usize>(&mut self, parts: [&str; N]) {
        for part in parts {
            self.push(part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            root: PathBuf::from("/srv/cp/instances/i-1"),
            read_only: vec![
                PathBuf::from("/srv/cache/node/24"),
                PathBuf::from("/srv/cache/openclaw/9"),
            ],
        }
    }

    #[test]
    fn the_command_line_drops_to_the_cells_uid_last_and_mounts_only_its_trees() {
        let settings = CellSettings::new(200_001, "i-1").unwrap();
        let procs = vec![PathBuf::from("/sys/fs/cgroup/memory/x/cell/cgroup.procs")];
        let inner: Vec<OsString> = vec!["node".into(), "openclaw.mjs".into()];
        let argv: Vec<String> = argv(&layout(), &settings, &procs, &inner)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let joined = argv.join(" ");
        assert_eq!(argv[0], "/bin/sh");
        assert!(joined.contains("cgroup.procs -- setpriv --pdeathsig KILL -- prlimit --nofile=8192:8192 --nproc=512:512"));
        assert!(joined.contains("--reuid 200001 --regid 200001 --clear-groups --no-new-privs"));
        assert!(joined.ends_with("--bounding-set=-all -- node openclaw.mjs"));
        assert!(
            joined.contains("--bind /srv/cp/instances/i-1/openclaw /srv/cp/instances/i-1/openclaw")
        );
        assert!(joined.contains("--bind /srv/cp/instances/i-1/home /srv/cp/instances/i-1/home"));
        assert!(joined.contains("--ro-bind /srv/cache/node/24 /srv/cache/node/24"));
        assert!(joined.contains("--perms 0711 --dir /srv/cp/instances/i-1 "));
        // The runtime's directory itself is never bound: its logs, its
        // record and the control plane's files stay out.
        assert!(!joined.contains("--bind /srv/cp/instances/i-1 "));
        assert!(!joined.contains("--ro-bind /srv/cp "));
        assert!(!joined.contains("/etc/shadow"));
        assert!(!joined.contains("npmrc"));
        for ns in [
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--die-with-parent",
        ] {
            assert!(joined.contains(ns), "{ns}");
        }
    }
}
