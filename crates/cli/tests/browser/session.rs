//! One WebDriver session on the console: navigation, screenshots, reading
//! the page, and the bounded waits, clicks and form submissions the flow
//! needs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::driver::ChromeDriver;
use crate::CHROMIUM;

/// One WebDriver session on the console, with the waits the flow needs.
#[derive(Clone)]
pub(crate) struct Browser {
    pub(crate) client: fantoccini::Client,
    pub(crate) base: String,
    pub(crate) shots: PathBuf,
    pub(crate) taken: Arc<AtomicUsize>,
}

impl Browser {
    pub(crate) async fn open(driver: &ChromeDriver, profile: &Path, base: &str) -> Browser {
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

    pub(crate) async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The path of the current page.
    pub(crate) async fn path(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => url.path().to_owned(),
            Err(e) => format!("(unknown: {e})"),
        }
    }

    /// Saves the page as `NN-name.png`.
    pub(crate) async fn screenshot(&self, name: &str) {
        self.try_screenshot(name)
            .await
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
    }

    pub(crate) async fn try_screenshot(&self, name: &str) -> Result<(), String> {
        let n = self.taken.fetch_add(1, Ordering::SeqCst) + 1;
        let png = self.client.screenshot().await.map_err(|e| e.to_string())?;
        if !png.starts_with(b"\x89PNG") {
            return Err("not a PNG".into());
        }
        std::fs::write(self.shots.join(format!("{n:02}-{name}.png")), png)
            .map_err(|e| e.to_string())
    }

    /// Runs a script (one expression's value returned).
    pub(crate) async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script {script:?}: {e}"))
    }

    /// The trimmed text of the first element matching `css`, if any. Read
    /// in one script, so a `<main>` swapped meanwhile cannot make it stale.
    pub(crate) async fn text(&self, css: &str) -> Option<String> {
        let script = "const e = document.querySelector(arguments[0]); \
                      return e ? e.textContent.trim().replace(/\\s+/g, ' ') : null;";
        let value = self.client.execute(script, vec![json!(css)]).await.ok()?;
        value.as_str().map(str::to_owned)
    }

    /// The texts of every element matching `css`.
    pub(crate) async fn texts(&self, css: &str) -> Vec<String> {
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
    pub(crate) async fn wait_for_text(
        &self,
        css: &str,
        expected: &str,
        within: Duration,
    ) -> String {
        self.try_wait_for_text(css, expected, within)
            .await
            .unwrap_or_else(|shown| {
                panic!("`{css}` did not show {expected:?} within {within:?}: {shown}")
            })
    }

    /// As [`Self::wait_for_text`], but what was shown instead is returned
    /// as an error.
    pub(crate) async fn try_wait_for_text(
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
    pub(crate) async fn wait_for_path(&self, path: &str, within: Duration) {
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
    pub(crate) async fn click(&self, css: &str) {
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
    pub(crate) async fn submit(&self, form: &str) {
        self.press(&format!("{form} button[type=submit]")).await;
    }

    /// Clicks a submit button. Inside a live `<main>`, console.js sends the
    /// form with fetch from its submit handler, so the click has sent it
    /// once the page's POST count moved; console.js drops a submit while
    /// one of its polls is in flight (nothing happens for the person), and
    /// then the button is clicked again (bounded, never a second post).
    pub(crate) async fn press(&self, button: &str) {
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
    pub(crate) async fn fill(&self, css: &str, value: &str) {
        let input = match self.client.find(Locator::Css(css)).await {
            Ok(input) => input,
            Err(e) => panic!("no `{css}` on {}: {e}", self.path().await),
        };
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }

    /// Whether console.js runs on this page (it sets `data-live="on"`).
    pub(crate) async fn live(&self) -> bool {
        self.eval(
            "return document.documentElement.dataset.live === 'on';",
            vec![],
        )
        .await
            == true
    }

    /// Marks this document; a page load loses the mark.
    pub(crate) async fn mark_document(&self) {
        self.eval("window.__sameDocument = true; return null;", vec![])
            .await;
    }

    pub(crate) async fn still_marked(&self) -> bool {
        self.eval("return window.__sameDocument === true;", vec![])
            .await
            == true
    }
}
