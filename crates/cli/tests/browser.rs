//! The web console in a real browser: headless Chromium driven through
//! ChromeDriver (WebDriver, via fantoccini) against the real `clawplane serve`
//! binary, whose `local` provisioner runs a real `clawplane runtime` and a
//! real OpenClaw gateway.
//!
//! sign up -> overview -> Account shows the user id -> Create: the stepper
//! reaches Ready without a page load -> Security: a real device's pairing
//! request appears by itself and is approved with its Approve button; the
//! device then connects -> Usage: Back up now (notice, backup listed),
//! Restart gateway (notice, a new gateway running) -> Billing shows the
//! month's grant -> Account -> sign out returns to the sign-in page. The
//! instance is then deleted through the API and no process is left.
//!
//! Every page is saved as a PNG in `test-artifacts/browser/` (a failing run
//! also saves `NN-failure.png`). The live updates (console.js: forms sent with
//! fetch, `<main data-poll>` pages refreshing themselves) are checked on the
//! way but reported at the end, so a missing script still lets the rest of
//! the flow be checked; the test fails either way.
//!
//! Chromium and ChromeDriver are the Debian packages `chromium` and
//! `chromium-driver` (`scripts/test` installs them); without them the test
//! fails. All traffic stays on 127.0.0.1.

#[path = "browser/api.rs"]
mod api;
mod common;
#[path = "browser/devices.rs"]
mod devices;
#[path = "browser/driver.rs"]
mod driver;
#[path = "browser/flow.rs"]
mod flow;
#[path = "browser/session.rs"]
mod session;
#[path = "browser/usage.rs"]
mod usage;

use std::path::PathBuf;
use std::time::Instant;

use common::{processes_under, Reaper, Server};
use driver::{require_browser, ChromeDriver};
use flow::flow;
use session::Browser;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INTERNAL_KEY: &str = "internal-key-for-browser-tests-0123456789";
const ENCRYPTION_KEY: &str = "3c5e7a9b1d2f4a6c8e0b1a2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60";
const EMAIL: &str = "browser-user@example.com";
const PASSWORD: &str = "a long enough password";
const DEVICE_NAME: &str = "Browser phone";
/// The default monthly grant (`CLAWPLANE_MONTHLY_GRANT_USD`, 10 USD), given
/// when the instance is created; `--no-jobs` meters nothing after it.
const GRANT: &str = "$10.00";

/// What the flow needs besides the browser.
struct Context {
    base: String,
    data_dir: PathBuf,
    server_pid: i32,
}

impl Context {
    /// Runtimes and gateways under the data directory (not the server).
    fn runtimes(&self) -> Vec<i32> {
        processes_under(&self.data_dir)
            .into_iter()
            .filter(|p| *p != self.server_pid)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    require_browser();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let profile = dir.path().join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let _reaper = Reaper(data_dir.clone());
    let _browser_reaper = Reaper(profile.clone());

    let server = Server::start(
        &data_dir,
        None,
        &[
            ("OA_INTERNAL_KEY", INTERNAL_KEY),
            ("OPENCLAW_ENCRYPTION_KEY", ENCRYPTION_KEY),
            ("CLAWPLANE_TRUSTED_PROXIES", "127.0.0.1"),
        ],
    );
    let driver = ChromeDriver::start(dir.path()).await;
    let browser = Browser::open(&driver, &profile, &server.address).await;
    let started = Instant::now();
    let ctx = Context {
        base: server.address.clone(),
        data_dir: data_dir.clone(),
        server_pid: server.child.id() as i32,
    };
    let outcome = tokio::spawn(flow(browser.clone(), ctx)).await;
    if outcome.is_err() {
        if let Err(e) = browser.try_screenshot("failure").await {
            eprintln!("no failure screenshot: {e}");
        }
    }
    let closed = browser.client.clone().close().await;
    let live_problems = match outcome {
        Ok(problems) => problems,
        Err(e) => {
            eprintln!("serve's log:\n{}", server.stderr());
            std::panic::resume_unwind(e.into_panic())
        }
    };
    closed.expect("close the WebDriver session");
    eprintln!("the browser flow took {:?}", started.elapsed());
    drop(driver);
    drop(server);
    assert!(
        processes_under(&data_dir).is_empty(),
        "no process left under the data directory"
    );
    assert!(
        live_problems.is_empty(),
        "the console's live updates (console.js) did not work:\n- {}",
        live_problems.join("\n- ")
    );
}
