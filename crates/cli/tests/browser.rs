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

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clawplane_testkit::device::{Outcome, TestDevice};
use common::{processes_under, Reaper, Server, CONTROL_KEY};
use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{ClientBuilder, Locator};
use serde_json::{json, Value};

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

/// Fails (never skips) when the browser is not installed.
fn require_browser() {
    for path in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: the browser test needs Chromium and ChromeDriver. \
             scripts/test installs them (apt-get install chromium chromium-driver)."
        );
    }
}

fn free_loopback_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().unwrap().port()
}

fn loopback_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// `chromedriver` as a child in its own process group, killed (with the
/// Chromium it started) when dropped.
struct ChromeDriver {
    child: Child,
    url: String,
    log: PathBuf,
}

impl ChromeDriver {
    async fn start(dir: &Path) -> ChromeDriver {
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

/// One WebDriver session on the console, with the waits the flow needs.
#[derive(Clone)]
struct Browser {
    client: fantoccini::Client,
    base: String,
    shots: PathBuf,
    taken: Arc<AtomicUsize>,
}

impl Browser {
    async fn open(driver: &ChromeDriver, profile: &Path, base: &str) -> Browser {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,900",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = tokio::time::timeout(
            Duration::from_secs(60),
            ClientBuilder::new(connector)
                .capabilities(capabilities)
                .connect(&driver.url),
        )
        .await
        .expect("a WebDriver session within 60 s")
        .unwrap_or_else(|e| {
            panic!(
                "no WebDriver session: {e}\n{}",
                std::fs::read_to_string(&driver.log).unwrap_or_default()
            )
        });
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(Duration::from_secs(30)),
                Some(Duration::from_secs(60)),
                Some(Duration::ZERO),
            ))
            .await
            .unwrap();
        let shots = clawplane_testkit::artifacts_dir("browser");
        for old in std::fs::read_dir(&shots).into_iter().flatten().flatten() {
            if old.path().extension().is_some_and(|e| e == "png") {
                let _ = std::fs::remove_file(old.path());
            }
        }
        Browser {
            client,
            base: base.to_owned(),
            shots,
            taken: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The path of the current page.
    async fn path(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => url.path().to_owned(),
            Err(e) => format!("(unknown: {e})"),
        }
    }

    /// Saves the page as `NN-name.png`.
    async fn screenshot(&self, name: &str) {
        self.try_screenshot(name)
            .await
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
    }

    async fn try_screenshot(&self, name: &str) -> Result<(), String> {
        let n = self.taken.fetch_add(1, Ordering::SeqCst) + 1;
        let png = self.client.screenshot().await.map_err(|e| e.to_string())?;
        if !png.starts_with(b"\x89PNG") {
            return Err("not a PNG".into());
        }
        std::fs::write(self.shots.join(format!("{n:02}-{name}.png")), png)
            .map_err(|e| e.to_string())
    }

    /// Runs a script (one expression's value returned).
    async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script {script:?}: {e}"))
    }

    /// The trimmed text of the first element matching `css`, if any. Read
    /// in one script, so a `<main>` swapped meanwhile cannot make it stale.
    async fn text(&self, css: &str) -> Option<String> {
        let script = "const e = document.querySelector(arguments[0]); \
                      return e ? e.textContent.trim().replace(/\\s+/g, ' ') : null;";
        let value = self.client.execute(script, vec![json!(css)]).await.ok()?;
        value.as_str().map(str::to_owned)
    }

    /// The texts of every element matching `css`.
    async fn texts(&self, css: &str) -> Vec<String> {
        let script = "return Array.from(document.querySelectorAll(arguments[0]), \
                      e => e.textContent.trim().replace(/\\s+/g, ' '));";
        let value = self
            .client
            .execute(script, vec![json!(css)])
            .await
            .unwrap_or(Value::Null);
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    /// Waits (bounded) until the element matching `css` shows `expected`
    /// (as a substring), without navigating; returns its whole text.
    async fn wait_for_text(&self, css: &str, expected: &str, within: Duration) -> String {
        self.try_wait_for_text(css, expected, within)
            .await
            .unwrap_or_else(|shown| {
                panic!("`{css}` did not show {expected:?} within {within:?}: {shown}")
            })
    }

    /// As [`Self::wait_for_text`], but what was shown instead is returned
    /// as an error.
    async fn try_wait_for_text(
        &self,
        css: &str,
        expected: &str,
        within: Duration,
    ) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            let shown = self.text(css).await;
            if let Some(text) = shown.as_ref().filter(|t| t.contains(expected)) {
                return Ok(text.clone());
            }
            if Instant::now() >= deadline {
                return Err(format!("it shows {shown:?} on {}", self.path().await));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits (bounded) until the current page is `path`.
    async fn wait_for_path(&self, path: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let now = self.path().await;
            if now == path {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not on {path} within {within:?}: on {now} ({:?})",
                self.text("main").await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Clicks the element matching `css`, finding it again when a `<main>`
    /// swap replaced it between finding and clicking (bounded).
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let result = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.click().await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return,
                Err(e)
                    if (e.is_stale_element_reference()
                        || e.is_no_such_element()
                        || e.is_element_not_interactable())
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!("click `{css}` on {}: {e}", self.path().await),
            }
        }
    }

    /// Clicks the submit button of the form matching `form`.
    async fn submit(&self, form: &str) {
        self.press(&format!("{form} button[type=submit]")).await;
    }

    /// Clicks a submit button. Inside a live `<main>`, console.js sends the
    /// form with fetch from its submit handler, so the click has sent it
    /// once the page's POST count moved; console.js drops a submit while
    /// one of its polls is in flight (nothing happens for the person), and
    /// then the button is clicked again (bounded, never a second post).
    async fn press(&self, button: &str) {
        const COUNT_POSTS: &str = "if (window.__posts === undefined) { \
               window.__posts = 0; const send = window.fetch; \
               window.fetch = function (input, init) { \
                 if (init && String(init.method).toUpperCase() === 'POST') window.__posts += 1; \
                 return send.apply(this, arguments); }; } \
             return window.__posts;";
        let enhanced = self
            .eval(
                "const b = document.querySelector(arguments[0]); \
                 return !!b && !!b.closest('main[data-live]') \
                   && document.documentElement.dataset.live === 'on';",
                vec![json!(button)],
            )
            .await;
        if enhanced != true {
            return self.click(button).await;
        }
        for _ in 0..20 {
            let before = self.eval(COUNT_POSTS, vec![]).await;
            self.click(button).await;
            // `null`: the click loaded a page (the live checks catch that).
            let after = self
                .eval(
                    "return window.__posts === undefined ? null : window.__posts;",
                    vec![],
                )
                .await;
            if after.is_null() || after != before {
                return;
            }
            eprintln!(
                "console.js dropped the click on `{button}` (a poll was in flight); clicking again"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("console.js never sent the form of `{button}`");
    }

    /// Types into the input matching `css`.
    async fn fill(&self, css: &str, value: &str) {
        let input = match self.client.find(Locator::Css(css)).await {
            Ok(input) => input,
            Err(e) => panic!("no `{css}` on {}: {e}", self.path().await),
        };
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }

    /// Whether console.js runs on this page (it sets `data-live="on"`).
    async fn live(&self) -> bool {
        self.eval(
            "return document.documentElement.dataset.live === 'on';",
            vec![],
        )
        .await
            == true
    }

    /// Marks this document; a page load loses the mark.
    async fn mark_document(&self) {
        self.eval("window.__sameDocument = true; return null;", vec![])
            .await;
    }

    async fn still_marked(&self) -> bool {
        self.eval("return window.__sameDocument === true;", vec![])
            .await
            == true
    }
}

/// The server's JSON routes for what the browser cannot do: the control
/// surface (the gateway token for the device) and deleting the instance.
struct Api {
    http: reqwest::Client,
    base: String,
    user: String,
}

impl Api {
    async fn control(&self, path_and_query: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .header("x-oa-control-key", CONTROL_KEY)
            .send()
            .await
            .expect("control request sent");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("a JSON envelope");
        assert_eq!(status, 200, "{path_and_query}: {body}");
        body["data"].clone()
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-oa-internal-key", INTERNAL_KEY)
            .header("x-oa-user-id", &self.user)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON envelope"))
    }

    async fn gateway_pid(&self) -> Option<u64> {
        let (_, status) = self
            .call(reqwest::Method::GET, "/api/openclaw/runtime/status")
            .await;
        status["data"]["gateway"]["pid"].as_u64()
    }
}

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

/// The whole flow; returns what did not work in the live updates.
async fn flow(b: Browser, ctx: Context) -> Vec<String> {
    let mut live_problems = Vec::new();
    let minute = Duration::from_secs(60);

    // Sign up.
    b.goto("/console/sign-up").await;
    b.wait_for_text("h1", "Sign up", minute).await;
    b.screenshot("sign-up").await;
    b.fill("#email", EMAIL).await;
    b.fill("#password", PASSWORD).await;
    b.submit(r#"form[action="/console/sign-up"]"#).await;
    b.wait_for_path("/console", minute).await;
    b.wait_for_text("main h1", "OpenClaw", minute).await;
    b.wait_for_text("#instance-status", "Not created", minute)
        .await;
    b.wait_for_text("nav", EMAIL, minute).await;
    let links = b
        .eval(
            "return Array.from(document.querySelectorAll('nav a'), a => a.getAttribute('href'));",
            vec![],
        )
        .await;
    assert_eq!(
        links,
        json!([
            "/console",
            "/console/create",
            "/console/chat",
            "/console/security",
            "/console/usage",
            "/console/billing",
            "/console/account"
        ]),
        "the sidebar"
    );
    b.screenshot("overview").await;
    if !b.live().await {
        live_problems.push(
            "console.js did not run on the overview: <html data-live> is not \"on\"".to_owned(),
        );
    }

    // The Account page names the user id the control surface knows the user by.
    b.click(r#"nav a[href="/console/account"]"#).await;
    b.wait_for_path("/console/account", minute).await;
    let user = b.wait_for_text("code#user-id", "-", minute).await;
    assert!(uuid::Uuid::parse_str(&user).is_ok(), "a user id: {user:?}");
    let api = Api {
        http: loopback_client(),
        base: ctx.base.clone(),
        user: user.clone(),
    };
    assert_eq!(
        api.control(&format!("/control/openclaw/instance?user_id={user}"))
            .await,
        Value::Null,
        "no instance before Create"
    );

    // Create: the stepper moves to Ready in the same document.
    b.click(r#"nav a[href="/console/create"]"#).await;
    b.wait_for_path("/console/create", minute).await;
    b.wait_for_text("#instance-status", "Not created", minute)
        .await;
    let live_on_create = b.live().await;
    b.mark_document().await;
    let started = Instant::now();
    b.submit(r#"form[action="/console/create"]"#).await;
    let mut seen_current = Vec::new();
    let mut provisioning_shot = false;
    let deadline = started + Duration::from_secs(240);
    loop {
        let badge = b.text("#instance-status .badge").await.unwrap_or_default();
        let steps = b
            .eval(
                "return Array.from(document.querySelectorAll('ol.stepper li'), \
                 li => [li.textContent.trim(), li.className]);",
                vec![],
            )
            .await;
        for step in steps.as_array().into_iter().flatten() {
            if step[1] == "current" && !seen_current.contains(&step[0]) {
                seen_current.push(step[0].clone());
            }
        }
        if badge == "Provisioning" && !provisioning_shot {
            b.screenshot("create-provisioning").await;
            provisioning_shot = true;
        }
        if badge == "Ready" {
            assert_eq!(
                steps,
                json!([
                    ["Creating", "done"],
                    ["Deploying", "done"],
                    ["Booting", "done"],
                    ["Ready", "done"]
                ]),
                "the stepper at Ready"
            );
            break;
        }
        assert_ne!(
            badge,
            "Error",
            "provisioning failed: {:?}",
            b.text("main").await
        );
        assert!(
            Instant::now() < deadline,
            "not Ready within 240 s: the badge shows {badge:?}, the stepper {steps}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("Ready in the browser after {:?}", started.elapsed());
    assert!(
        !seen_current.is_empty(),
        "the stepper showed a current step while provisioning"
    );
    b.screenshot("create-ready").await;
    if !live_on_create {
        live_problems.push("console.js did not run on the Create page".to_owned());
    }
    if !b.still_marked().await {
        live_problems.push(
            "the Create page was reloaded between Create and Ready \
             (window.__sameDocument was lost): the form was not sent with fetch \
             or the page did not poll by swapping <main>"
                .to_owned(),
        );
    }
    let instance = api
        .control(&format!("/control/openclaw/instance?user_id={user}"))
        .await;
    assert_eq!(instance["status"], "ready", "{instance}");

    // The overview offers the gateway through the ingress, on this port.
    b.click(r#"nav a[href="/console"]"#).await;
    b.wait_for_text("#instance-status", "Ready", minute).await;
    let open = b
        .eval(
            "return document.querySelector('#open-openclaw').getAttribute('href');",
            vec![],
        )
        .await;
    let port = ctx.base.rsplit(':').next().unwrap().to_owned();
    let gateway_url = format!(
        "http://{}.localhost:{port}/",
        instance["runtime_name"].as_str().unwrap()
    );
    assert_eq!(open, json!("/console/open"), "Open OpenClaw");
    let shown = b.text("#gateway-address").await.unwrap_or_default();
    assert_eq!(shown, gateway_url, "the address devices connect to");
    b.screenshot("overview-ready").await;

    // Security: a real device asks to pair while the page is open; its row
    // appears by itself; Approve; the device connects.
    b.click(r#"nav a[href="/console/security"]"#).await;
    b.wait_for_path("/console/security", minute).await;
    b.wait_for_text("main", "No device is waiting for approval", minute)
        .await;
    let live_on_security = b.live().await;
    b.mark_document().await;
    let gateway_token = api
        .control(&format!(
            "/control/openclaw/instance/secret?user_id={user}&name=gateway_token"
        ))
        .await["value"]
        .as_str()
        .expect("the gateway token")
        .to_owned();
    // The device comes through the front door at <runtime_name>.localhost,
    // its address forwarded by a trusted proxy (simulated on loopback).
    let ws = format!("ws://127.0.0.1:{port}");
    let door_host = gateway_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let phone = TestDevice::new(DEVICE_NAME);
    let first = phone
        .connect(
            &ws,
            &gateway_token,
            false,
            Some("203.0.113.9"),
            Some(&door_host),
        )
        .await;
    let Outcome::NotPaired { request_id } = first else {
        panic!("expected a pairing request, got {first:?}")
    };
    let approve_form = format!(r#"form[action="/console/security/{request_id}/approve"]"#);
    let approve_label = format!("Approve {DEVICE_NAME}");
    let row = format!("{approve_form} button");
    match b
        .try_wait_for_text("main table", DEVICE_NAME, Duration::from_secs(45))
        .await
    {
        Ok(_) if b.still_marked().await => {}
        Ok(_) => live_problems.push(
            "the Security page was reloaded while waiting for the pending device \
             (window.__sameDocument was lost)"
                .to_owned(),
        ),
        Err(shown) => {
            live_problems.push(format!(
                "the pending device did not appear on the open Security page within 45 s \
                 without navigating ({shown})"
            ));
            b.goto("/console/security").await;
            b.wait_for_text("main table", DEVICE_NAME, minute).await;
        }
    }
    if !live_on_security {
        live_problems.push("console.js did not run on the Security page".to_owned());
    }
    let pending = b.texts("main table tbody tr").await;
    assert!(
        pending
            .iter()
            .any(|r| r.contains(DEVICE_NAME) && r.contains("203.0.113.9")),
        "the pending row names the device and its address: {pending:?}"
    );
    let label = b
        .eval(
            "const e = document.querySelector(arguments[0]); \
             return e ? e.getAttribute('aria-label') : null;",
            vec![json!(row)],
        )
        .await;
    assert_eq!(
        label,
        json!(approve_label),
        "the Approve button of the request"
    );
    b.screenshot("security-pending").await;
    b.press(&format!(
        r#"{approve_form} button[aria-label="{approve_label}"]"#
    ))
    .await;
    b.wait_for_text("p.notice", "The device was approved.", minute)
        .await;
    b.wait_for_text("main", "No device is waiting for approval", minute)
        .await;
    let paired = b.texts("main table tbody tr").await;
    assert!(
        paired.iter().any(|r| r.contains(DEVICE_NAME)),
        "the device is listed as paired: {paired:?}"
    );
    b.screenshot("security-approved").await;
    let second = phone
        .connect(
            &ws,
            &gateway_token,
            false,
            Some("203.0.113.9"),
            Some(&door_host),
        )
        .await;
    assert!(
        matches!(second, Outcome::HelloOk { .. }),
        "the approved device connects: {second:?}"
    );

    // The Control UI through the front door, signed in by the console: no
    // token typed, none in the page, the URL or the browser's storage; the
    // gateway pairs the runtime's owner device for it.
    b.goto("/console/open").await;
    let deadline = Instant::now() + minute;
    loop {
        let url = b.client.current_url().await.map(|u| u.to_string());
        if url.as_deref().is_ok_and(|u| u.starts_with(&gateway_url)) {
            break;
        }
        assert!(Instant::now() < deadline, "not at the gateway: {url:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let owner_device = loop {
        let (_, devices) = api
            .call(reqwest::Method::GET, "/api/openclaw/runtime/devices")
            .await;
        let found = devices["data"]["paired"].as_array().and_then(|paired| {
            paired
                .iter()
                .find(|d| d["clientId"] == "openclaw-control-ui")
                .cloned()
        });
        if let Some(d) = found {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "the Control UI did not sign in within 90 s: {devices}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(owner_device["remoteIp"].is_null(), "{owner_device}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.screenshot("control-ui").await;
    let visible = b
        .eval(
            "return [location.href, document.documentElement.outerHTML, \
             JSON.stringify(localStorage), JSON.stringify(sessionStorage), document.cookie].join('\\n');",
            vec![],
        )
        .await;
    let visible = visible.as_str().unwrap_or_default();
    assert!(visible.contains("openclaw"), "the Control UI loaded");
    assert!(
        !visible.contains(&gateway_token),
        "the gateway token is visible to the browser"
    );
    // The same browser without its door cookie is an anonymous visitor.
    b.client.delete_all_cookies().await.unwrap();
    b.client.goto(&gateway_url).await.unwrap();
    b.wait_for_text("main", "Sign in to the console", minute)
        .await;
    b.screenshot("control-ui-anonymous").await;
    b.goto("/console").await;
    b.wait_for_text("#instance-status", "Ready", minute).await;

    // Usage: a backup, then a restart.
    b.click(r#"nav a[href="/console/usage"]"#).await;
    b.wait_for_path("/console/usage", minute).await;
    b.wait_for_text("#gateway-state", "running", minute).await;
    let backups_before = b.texts("main table tbody tr").await.len();
    b.screenshot("usage").await;
    b.submit(r#"form[action="/console/usage/backup"]"#).await;
    b.wait_for_text("p.notice", "Backup taken.", Duration::from_secs(120))
        .await;
    let backups = b.texts("main table tbody tr").await;
    assert_eq!(
        backups.len(),
        backups_before + 1,
        "the new backup is listed: {backups:?}"
    );
    b.screenshot("usage-backup").await;

    let gateway_before = api.gateway_pid().await.expect("a gateway pid");
    b.submit(r#"form[action="/console/usage/restart"]"#).await;
    b.wait_for_text(
        "p.notice",
        "The gateway restarted.",
        Duration::from_secs(120),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = b.text("#gateway-state").await;
        if state.as_deref() == Some("running") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway is not running again within 120 s: {state:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        b.goto("/console/usage").await;
    }
    let gateway_after = api.gateway_pid().await.expect("a gateway pid");
    assert_ne!(gateway_after, gateway_before, "a new gateway process");
    b.screenshot("usage-restarted").await;

    // Billing: the month's grant.
    b.click(r#"nav a[href="/console/billing"]"#).await;
    b.wait_for_path("/console/billing", minute).await;
    let balance = b.wait_for_text("#balance", "$", minute).await;
    assert_eq!(balance, GRANT, "the balance after the monthly grant");
    b.screenshot("billing").await;

    // Account.
    b.click(r#"nav a[href="/console/account"]"#).await;
    b.wait_for_path("/console/account", minute).await;
    b.wait_for_text("code#user-id", &user, minute).await;
    b.screenshot("account").await;

    // Sign out: back on the sign-in page, and the console is closed.
    b.submit(r#"form[action="/console/sign-out"]"#).await;
    b.wait_for_path("/console/sign-in", minute).await;
    b.wait_for_text("h1", "Sign in", minute).await;
    b.screenshot("signed-out").await;
    b.goto("/console/usage").await;
    b.wait_for_path("/console/sign-in", minute).await;

    // Another account, signed in, is refused at the first one's door.
    b.goto("/console/sign-up").await;
    b.fill("#email", "someone-else@example.com").await;
    b.fill("#password", PASSWORD).await;
    b.submit(r#"form[action="/console/sign-up"]"#).await;
    b.wait_for_path("/console", minute).await;
    b.client.goto(&gateway_url).await.unwrap();
    b.wait_for_text("main", "Sign in to the console", minute)
        .await;
    b.screenshot("control-ui-other-account").await;

    // Delete the instance so that no runtime is left.
    let (status, deleted) = api
        .call(reqwest::Method::DELETE, "/api/openclaw/instance")
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["data"]["instance"]["status"], "deleted");
    assert!(
        ctx.runtimes().is_empty(),
        "no runtime or gateway left: {:?}",
        ctx.runtimes()
    );
    live_problems
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
