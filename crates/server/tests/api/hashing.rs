//! Sign-in and sign-up under load: password hashes are bounded by the
//! hashing memory budget whatever emails are typed, each client address
//! gets a few attempts per window, and the owner still signs in.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clawplane_store::Backend;
use reqwest::{Client, StatusCode};

use crate::console::Browser;
use crate::helpers::{spawn_app_with, TestApp};

const OWNER: &str = "owner@example.com";
const PASSWORD: &str = "correct horse battery";
const HASH_BUDGET: u64 = 256 * 1024 * 1024;
/// What serve may grow by besides the hashes themselves: connections,
/// request buffers, blocking threads' stacks and the allocator's slack.
const SLACK: u64 = 200 * 1024 * 1024;

/// A client of the sign-in forms: no redirects followed, one form token
/// (double submit: its cookie and the field) for every post.
struct Forms {
    client: Client,
    base: String,
    csrf: String,
}

impl Forms {
    async fn new(app: &TestApp) -> Self {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let page = client
            .get(format!("{}/console/sign-in", app.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = Browser::csrf(&page);
        Forms {
            client,
            base: app.address.clone(),
            csrf,
        }
    }

    /// Posts `form` (`sign-in` or `sign-up`) as a client at `from`, which
    /// the test server's trusted proxy (loopback) vouches for.
    async fn post(
        &self,
        form: &str,
        from: IpAddr,
        email: &str,
        password: &str,
    ) -> (StatusCode, Option<String>, String) {
        let r = self
            .client
            .post(format!("{}/console/{form}", self.base))
            .header("cookie", format!("clawplane_csrf={}", self.csrf))
            .header("x-forwarded-for", from.to_string())
            .form(&[
                ("csrf", &*self.csrf),
                ("email", email),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        let retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (r.status(), retry_after, r.text().await.unwrap())
    }
}

fn address(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
}

/// The test process's resident memory (serve runs in it).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

async fn spawn(attempts: u32, window: Duration) -> TestApp {
    spawn_app_with(Backend::Sqlite, |c| {
        c.ingress.trusted_proxies = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        c.hash_memory_bytes = HASH_BUDGET;
        c.sign_in_attempts = attempts;
        c.sign_in_window = window;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_unknown_emails_at_once_stay_within_the_hash_budget_and_the_owner_signs_in() {
    let app = spawn(20, Duration::from_secs(60)).await;
    let forms = Arc::new(Forms::new(&app).await);
    let owner_address = address(1);
    let (status, _, _) = forms.post("sign-up", owner_address, OWNER, PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the owner signs up");

    let before = resident_bytes();
    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let running = running.clone();
        tokio::task::spawn_blocking(move || {
            let mut peak = 0;
            while running.load(Ordering::Relaxed) {
                peak = peak.max(resident_bytes());
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    // Distinct emails from distinct addresses: neither the per-email nor
    // the per-address count stops them, only the hashing bound.
    let flood: Vec<_> = (0..300u32)
        .map(|n| {
            let forms = forms.clone();
            tokio::spawn(async move {
                let email = format!("nobody-{n}@example.com");
                forms
                    .post("sign-in", address(1000 + n), &email, "not the password")
                    .await
            })
        })
        .collect();

    // The owner, meanwhile: they may be asked to wait, never refused.
    let mut owner_waits = 0;
    loop {
        let (status, retry_after, page) =
            forms.post("sign-in", owner_address, OWNER, PASSWORD).await;
        if status == StatusCode::SEE_OTHER {
            break;
        }
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
        assert!(page.contains("Wait a few seconds"), "{page}");
        owner_waits += 1;
        assert!(owner_waits < 5, "the owner got in after a few waits");
        let wait: u64 = retry_after.expect("Retry-After").parse().unwrap();
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }

    let mut answered = 0;
    for attempt in flood {
        let (status, retry_after, page) = attempt.await.unwrap();
        match status {
            StatusCode::OK => {
                assert!(page.contains("do not match an account"), "{page}");
                answered += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(retry_after.is_some(), "a busy answer says when to retry");
            }
            other => panic!("unexpected {other}: {page}"),
        }
    }
    running.store(false, Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    let after = resident_bytes();

    let growth = peak.saturating_sub(before);
    let mib = |b: u64| b / (1024 * 1024);
    eprintln!(
        "resident: before {} MiB, peak {} MiB, after {} MiB; {answered} of 300 hashed, \
         the owner waited {owner_waits} times",
        mib(before),
        mib(peak),
        mib(after)
    );
    assert!(answered > 0, "the flood was hashed, not refused outright");
    assert!(
        growth < HASH_BUDGET + SLACK,
        "peak growth {} MiB stays under the hash budget plus {} MiB",
        mib(growth),
        mib(SLACK)
    );
    app.stop().await;
}

#[tokio::test]
async fn an_address_past_its_attempts_is_asked_to_wait_and_gets_in_after_the_window() {
    let window = Duration::from_millis(1500);
    let app = spawn(3, window).await;
    let forms = Forms::new(&app).await;
    let owner = address(1);
    let (status, _, _) = forms.post("sign-up", owner, OWNER, PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // Whatever the email: two more attempts, then a wait.
    let attacker = address(2);
    for n in 0..3 {
        let email = format!("guess-{n}@example.com");
        let (status, _, _) = forms.post("sign-in", attacker, &email, "a guess!!!").await;
        assert_eq!(status, StatusCode::OK, "attempt {n} is answered");
    }
    for form in ["sign-in", "sign-up"] {
        let (status, retry_after, page) = forms
            .post(form, attacker, "guess-9@example.com", "a guess!!!")
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{form}: {page}");
        let wait: u64 = retry_after.expect("Retry-After").parse().unwrap();
        assert!(
            (1..=2).contains(&wait),
            "Retry-After {wait}s is the window's rest"
        );
        assert!(page.contains("Too many sign-in attempts"), "{page}");
    }

    // The owner's own address is not affected, and once the window
    // passes the refused address gets in with the right password.
    let (status, _, _) = forms.post("sign-in", owner, OWNER, PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    tokio::time::sleep(window).await;
    let (status, _, page) = forms.post("sign-in", attacker, OWNER, PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    app.stop().await;
}
