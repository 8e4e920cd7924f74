//! ChromeDriver and the browser's prerequisites: Chromium and ChromeDriver
//! installed, a free loopback port for the driver.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::loopback_client;
use crate::{CHROMEDRIVER, CHROMIUM};

/// Fails (never skips) when the browser is not installed.
pub(crate) fn require_browser() {
    for path in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: the browser test needs Chromium and ChromeDriver. \
             scripts/test installs them (apt-get install chromium chromium-driver)."
        );
    }
}

pub(crate) fn free_loopback_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().unwrap().port()
}

/// `chromedriver` as a child in its own process group, killed (with the
/// Chromium it started) when dropped.
pub(crate) struct ChromeDriver {
    pub(crate) child: Child,
    pub(crate) url: String,
    pub(crate) log: PathBuf,
}

impl ChromeDriver {
    pub(crate) async fn start(dir: &Path) -> ChromeDriver {
        let port = free_loopback_port();
        let log = dir.join("chromedriver.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("spawn chromedriver");
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let http = loopback_client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = match http.get(format!("{}/status", driver.url)).send().await {
                Ok(r) => r.json::<Value>().await.ok(),
                Err(_) => None,
            };
            if ready.is_some_and(|s| s["value"]["ready"] == true) {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready in 30 s: {}",
                std::fs::read_to_string(&driver.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The group is chromedriver's own (process_group(0) above).
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
