//! `serve` refuses to host anyone without cells: on a host whose PATH lacks
//! the sandbox tools it exits with a sentence saying what to install, and
//! `--isolation none` (chosen explicitly) starts and warns that it is unsafe.

mod common;

use std::time::{Duration, Instant};

use common::{clawplane, Server};

#[test]
fn serve_without_the_sandbox_tools_refuses_to_start_and_says_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    // Every tool a cell needs but bubblewrap and slirp4netns.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in ["sh", "setpriv", "prlimit", "nsenter", "ip"] {
        let found = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
            .iter()
            .map(|d| std::path::Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} is on this host"));
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    let started = Instant::now();
    let out = clawplane()
        .args(["serve", "--listen", "127.0.0.1:0", "--no-jobs"])
        .env("CLAWPLANE_DATA_DIR", dir.path().join("data"))
        .env("PATH", &bin)
        .output()
        .expect("run clawplane serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "it must not start: {stdout} {stderr}"
    );
    assert!(!stdout.contains("listening"), "it never listened: {stdout}");
    assert!(
        stderr.contains("bwrap (Debian package bubblewrap)")
            && stderr.contains("slirp4netns")
            && stderr.contains("apt-get install")
            && stderr.contains("--isolation none"),
        "the message says what to install and the way out: {stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn serve_with_isolation_none_starts_and_warns_that_it_is_unsafe() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = Server::start(
        &data_dir,
        None,
        &[("CLAWPLANE_ISOLATION", "none"), ("CLAWPLANE_LOG", "warn")],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stderr().contains("isolation is none") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.stderr();
    assert!(
        log.contains("isolation is none") && log.contains("WARN"),
        "a warning at start: {log}"
    );
    assert!(
        log.contains("the control plane's key and database"),
        "{log}"
    );
}

#[test]
fn bad_cell_settings_are_refused_with_the_setting_named() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, says) in [
        ("CLAWPLANE_ISOLATION", "docker", "isolation 'docker'"),
        ("CLAWPLANE_CELL_MEMORY", "lots", "--cell-memory"),
        (
            "CLAWPLANE_CELL_ALLOW",
            "example.com:80",
            "CLAWPLANE_CELL_ALLOW",
        ),
        ("CLAWPLANE_CELL_UID_BASE", "1000", "below 100000"),
        ("CLAWPLANE_CELL_EGRESS", "some", "cell egress"),
    ] {
        let out = clawplane()
            .args(["serve", "--listen", "127.0.0.1:0", "--no-jobs"])
            .env("CLAWPLANE_DATA_DIR", dir.path().join("data"))
            .env(var, value)
            .output()
            .expect("run clawplane serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={value} is refused");
        assert!(stderr.contains(says), "{var}={value}: {stderr}");
    }
}
