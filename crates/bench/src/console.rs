//! `clawplane bench console`: the server-side render time of each page of the
//! web console, on the embedded defaults (SQLite, the `local` provisioner
//! running this binary as `clawplane runtime` with a real OpenClaw gateway),
//! against `GET /healthz` of the same server as the floor.
//!
//! One user signs up through the forms, creates an instance through the
//! console's form and waits for it to be ready; the ledger gets a history of
//! grants and burns (through the control routes) and the runtime takes one
//! backup, so every page has something to show. Each page is then requested
//! back to back by one client on loopback, timed from sending the request to
//! reading the whole body. Every answer must be 200 with the page's own
//! content, or the run fails.
//!
//! Everything runs on loopback; every loop is bounded in time and count. The
//! session cookie and form tokens are never printed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use clawplane_domain::Email;
use clawplane_runtime::install;
use clawplane_secrets::SecretString;
use clawplane_server::ServerConfig;
use clawplane_store::{Store, StoreOptions};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::local_server::LocalServer;
use super::stats::{machine, median, ms, p95, p99};

/// Settings of the console benchmark.
#[derive(Debug, Args)]
pub struct ConsoleBenchArgs {
    /// Timed requests per page (sequential, one client).
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Untimed requests per page before the timed ones.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Ledger entries written for the user (about 1 in 25 a grant, the rest burns).
    #[arg(long, default_value_t = 500)]
    entries: usize,
    /// Milliseconds reads may be answered from memory (0: every read goes to the database).
    #[arg(long, default_value_t = 1000)]
    read_cache_ms: u64,
}

const INTERNAL_KEY: &str = "bench-internal-key-0123456789abcdef";
const CONTROL_KEY: &str = "bench-control-key-0123456789abcdef";
const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "bench-console-password";
/// The target for each page's p95.
const TARGET: Duration = Duration::from_millis(50);
/// Longest wait for the instance to be ready.
const READY_WITHIN: Duration = Duration::from_secs(300);
/// Longest time the timed requests of one page may take together.
const PAGE_WITHIN: Duration = Duration::from_secs(300);
/// Most requests per page, whatever the settings.
const MAX_REQUESTS: usize = 100_000;

/// Runs the console benchmark.
pub async fn run(args: ConsoleBenchArgs) -> anyhow::Result<ExitCode> {
    let cache = install::default_cache_dir();
    install::find(&cache, install::DEFAULT_OPENCLAW_VERSION).with_context(|| {
        format!(
            "OpenClaw {} is not installed under {}: run `clawplane openclaw install` first",
            install::DEFAULT_OPENCLAW_VERSION,
            cache.display()
        )
    })?;
    let dir = tempfile::tempdir()?;
    let cache_ttl = Duration::from_millis(args.read_cache_ms);
    let options = StoreOptions {
        read_cache_ttl: cache_ttl,
        ..Default::default()
    };
    let config = ServerConfig {
        internal_key: Some(SecretString::from(INTERNAL_KEY.to_owned())),
        control_key: Some(SecretString::from(CONTROL_KEY.to_owned())),
        billing: clawplane_billing::BillingConfig {
            summary_cache_ttl: cache_ttl,
            ..Default::default()
        },
        run_jobs: false,
        ..Default::default()
    };
    let server = LocalServer::start(
        &dir.path().join("data"),
        &cache,
        &options,
        Duration::from_secs(120),
        config,
    )
    .await?;
    let base = server.base.clone();
    let store = server.store.clone();
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let http = Http { client, base };

    let mut user = None;
    let result = bench(&http, &store, &args, &mut user).await;

    // Whatever happened: no runtime or gateway is left behind.
    let mut cleanup = Ok(());
    if let Some(user) = &user {
        cleanup = delete_instance(&http, user).await;
    }
    server.stop().await;
    let code = result?;
    cleanup?;
    Ok(code)
}

/// The client and the server's address.
struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    fn get(&self, path: &str, session: Option<&str>) -> reqwest::RequestBuilder {
        let request = self.client.get(format!("{}{path}", self.base));
        match session {
            Some(s) => request.header(COOKIE, format!("clawplane_session={s}")),
            None => request,
        }
    }

    /// `GET path` with the session; the page's HTML, which must come with 200.
    async fn page(&self, path: &str, session: &str) -> anyhow::Result<String> {
        let response = self.get(path, Some(session)).send().await?;
        let status = response.status();
        let body = response.text().await?;
        if status != StatusCode::OK {
            bail!("GET {path} answered {status}");
        }
        Ok(body)
    }

    /// A console form post; the answer must be a redirect (303).
    async fn post_form(
        &self,
        path: &str,
        cookie: &str,
        form: &[(&str, &str)],
        timeout: Duration,
    ) -> anyhow::Result<reqwest::Response> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, cookie)
            .form(form)
            .timeout(timeout)
            .send()
            .await?;
        let status = response.status();
        if status != StatusCode::SEE_OTHER {
            let body = response.text().await.unwrap_or_default();
            bail!(
                "POST {path} answered {status}: {}",
                problem_of(&body).unwrap_or("no message")
            );
        }
        Ok(response)
    }
}

/// One page measured, and what it reads to render.
struct Page {
    label: String,
    path: String,
    reads: &'static str,
    signed_in: bool,
    /// Text the page must contain, so a fallback page does not count.
    expect: &'static str,
}

struct Measured {
    page: Page,
    samples: Vec<Duration>,
    failures: usize,
}

async fn bench(
    http: &Http,
    store: &Store,
    args: &ConsoleBenchArgs,
    user_out: &mut Option<String>,
) -> anyhow::Result<ExitCode> {
    // 1. Sign up through the form.
    let response = http.get("/console/sign-up", None).send().await?;
    let pre_csrf = cookie_value(&response, "clawplane_csrf")
        .context("GET /console/sign-up set no clawplane_csrf cookie")?;
    let sign_up_csrf =
        form_csrf(&response.text().await?).context("the sign-up form has no csrf")?;
    let response = http
        .post_form(
            "/console/sign-up",
            &format!("clawplane_csrf={pre_csrf}"),
            &[
                ("email", EMAIL),
                ("password", PASSWORD),
                ("csrf", &sign_up_csrf),
            ],
            Duration::from_secs(30),
        )
        .await?;
    let session = cookie_value(&response, "clawplane_session")
        .context("the sign-up set no clawplane_session cookie")?;
    let session_cookie = format!("clawplane_session={session}");
    let (account, _) = store
        .account_by_email(&Email::parse(EMAIL)?)
        .await?
        .context("the account was not stored")?;
    let user = account.id;
    *user_out = Some(user.clone());
    eprintln!("signed up; creating the instance through the console");

    // 2. Create the instance through the console's form, and wait until it is ready.
    let csrf = form_csrf(&http.page("/console/create", &session).await?)
        .context("the create page has no csrf")?;
    let started = Instant::now();
    http.post_form(
        "/console/create",
        &session_cookie,
        &[("csrf", &csrf)],
        Duration::from_secs(30),
    )
    .await?;
    loop {
        let html = http.page("/console/create", &session).await?;
        if html.contains("badge ready") {
            break;
        }
        if html.contains("badge error") {
            bail!(
                "provisioning failed: {}",
                problem_of(&html).unwrap_or("no reason shown")
            );
        }
        if started.elapsed() > READY_WITHIN {
            bail!("the instance was not ready within {READY_WITHIN:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ready_after = started.elapsed();
    eprintln!("ready after {:.1} s", ready_after.as_secs_f64());

    // 3. A ledger history: grants and burns through the control routes.
    let started = Instant::now();
    let (grants, burns) = ledger_history(http, &user, args.entries).await?;
    eprintln!(
        "ledger: {grants} grants and {burns} burns written in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // 4. One backup through the console's form.
    let started = Instant::now();
    http.post_form(
        "/console/usage/backup",
        &session_cookie,
        &[("csrf", &csrf)],
        Duration::from_secs(180),
    )
    .await?;
    eprintln!("backup taken in {:.1} s", started.elapsed().as_secs_f64());

    // One API token, so the account page lists one (the page shows it once: not kept).
    let response = http
        .client
        .post(format!("{}/console/account/tokens", http.base))
        .header(COOKIE, &session_cookie)
        .form(&[("name", "bench"), ("csrf", &csrf)])
        .send()
        .await?;
    if response.status() != StatusCode::OK {
        bail!(
            "POST /console/account/tokens answered {}",
            response.status()
        );
    }
    drop(response);

    // The ledger's second page, from the first page's link.
    let billing = http.page("/console/billing", &session).await?;
    let older = billing
        .split("href=\"/console/billing?before=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .filter(|c| !c.is_empty() && c.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_owned);

    let mut pages = vec![
        Page {
            label: "`GET /healthz` (floor)".into(),
            path: "/healthz".into(),
            reads: "nothing",
            signed_in: false,
            expect: "",
        },
        Page {
            label: "sign-in".into(),
            path: "/console/sign-in".into(),
            reads: "nothing (a new form token)",
            signed_in: false,
            expect: "name=\"csrf\"",
        },
        Page {
            label: "overview".into(),
            path: "/console".into(),
            reads: "session, instance; runtime status",
            signed_in: true,
            expect: "id=\"gateway-state\">running<",
        },
        Page {
            label: "create".into(),
            path: "/console/create".into(),
            reads: "session, instance",
            signed_in: true,
            expect: "badge ready",
        },
        Page {
            label: "security".into(),
            path: "/console/security".into(),
            reads: "session, instance, service token; devices (gateway RPC)",
            signed_in: true,
            expect: "<h2>Paired devices</h2>",
        },
        Page {
            label: "usage".into(),
            path: "/console/usage".into(),
            reads: "session, instance, service token; runtime status and backup list",
            signed_in: true,
            expect: "Restore backup",
        },
        Page {
            label: "billing".into(),
            path: "/console/billing".into(),
            reads: "session; ledger summary and 25 entries",
            signed_in: true,
            expect: "Older entries",
        },
    ];
    match older {
        Some(cursor) => pages.push(Page {
            label: "billing, second page".into(),
            path: format!("/console/billing?before={cursor}"),
            reads: "session; ledger summary and 25 entries before a cursor",
            signed_in: true,
            expect: "<table>",
        }),
        None => eprintln!(
            "the billing page has no link to older entries; its second page is not measured"
        ),
    }
    pages.push(Page {
        label: "account".into(),
        path: "/console/account".into(),
        reads: "session, API tokens, instance, provider keys (sealed)",
        signed_in: true,
        expect: "No key stored.",
    });

    // 5. Each page: warm-up, then timed requests back to back.
    let requests = args.requests.clamp(1, MAX_REQUESTS);
    let mut results = Vec::new();
    for page in pages {
        let m = measure(
            http,
            page,
            &session,
            args.warmup.min(MAX_REQUESTS),
            requests,
        )
        .await?;
        results.push(m);
    }

    // 6. The report.
    print_report(args, requests, ready_after, &results);
    let failures: usize = results.iter().map(|m| m.failures).sum();
    if failures > 0 {
        bail!("{failures} requests did not answer 200 with the page's content");
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `entries` ledger entries for `user`: a grant of 5.00 USD every 25th,
/// burns of 0.05-0.29 USD (runtime time and model spend, alternately) between.
async fn ledger_history(http: &Http, user: &str, entries: usize) -> anyhow::Result<(usize, usize)> {
    let (mut grants, mut burns) = (0, 0);
    let run = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..entries.min(MAX_REQUESTS) {
        let (route, body) = if i % 25 == 0 {
            grants += 1;
            (
                "grant",
                json!({"user_id": user, "amount_usd": "5.00", "source": "top_up"}),
            )
        } else {
            burns += 1;
            let cents = 5 + (i * 7) % 25;
            let source = if i % 2 == 0 {
                "runtime_time"
            } else {
                "model_spend"
            };
            (
                "burn",
                json!({"user_id": user, "amount_usd": format!("0.{cents:02}"), "source": source}),
            )
        };
        let response = http
            .client
            .post(format!("{}/control/openclaw/billing/{route}", http.base))
            .header("x-oa-control-key", CONTROL_KEY)
            .header("idempotency-key", format!("bench-console-{run}-{i}"))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("POST /control/openclaw/billing/{route} answered {status}: {text}");
        }
    }
    Ok((grants, burns))
}

/// Warm-up requests, then `requests` timed ones, one after the other.
async fn measure(
    http: &Http,
    page: Page,
    session: &str,
    warmup: usize,
    requests: usize,
) -> anyhow::Result<Measured> {
    let session = page.signed_in.then_some(session);
    let ok = |status: StatusCode, body: &str| {
        status == StatusCode::OK
            && body.contains(page.expect)
            && !(page.signed_in && body.contains("class=\"problem\""))
    };
    for _ in 0..warmup {
        let response = http.get(&page.path, session).send().await?;
        let status = response.status();
        let body = response.text().await?;
        if !ok(status, &body) {
            bail!(
                "{} (warm-up) answered {status} without the expected content: {}",
                page.label,
                problem_of(&body).unwrap_or("no message")
            );
        }
    }
    let started = Instant::now();
    let mut samples = Vec::with_capacity(requests);
    let mut failures = 0;
    for _ in 0..requests {
        if started.elapsed() > PAGE_WITHIN {
            bail!(
                "{}: {requests} requests took over {PAGE_WITHIN:?}",
                page.label
            );
        }
        let t = Instant::now();
        let answer = match http.get(&page.path, session).send().await {
            Ok(response) => {
                let status = response.status();
                response.text().await.map(|body| (status, body))
            }
            Err(e) => Err(e),
        };
        let elapsed = t.elapsed();
        match answer {
            Ok((status, body)) if ok(status, &body) => samples.push(elapsed),
            _ => failures += 1,
        }
    }
    samples.sort();
    eprintln!(
        "{}: p95 {:.2} ms over {} requests",
        page.label,
        ms(p95(&samples)),
        samples.len()
    );
    Ok(Measured {
        page,
        samples,
        failures,
    })
}

fn print_report(
    args: &ConsoleBenchArgs,
    requests: usize,
    ready_after: Duration,
    results: &[Measured],
) {
    println!("## Web console: server-side render time\n");
    println!("Machine: {}.\n", machine());
    println!(
        "Settings: {requests} sequential requests per page after {} warm-up requests, one \
         client on loopback, timed from send to the whole body; SQLite, read cache {} ms; \
         {} ledger entries; one backup; instance ready {:.1} s after the create form.\n",
        args.warmup,
        args.read_cache_ms,
        args.entries,
        ready_after.as_secs_f64()
    );
    println!("| page | reads | p50 ms | p95 ms | p99 ms | max ms | failures | p95 <= 50 ms |");
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for m in results {
        let p95 = p95(&m.samples);
        let met = if m.page.path == "/healthz" {
            "(floor)"
        } else if p95 <= TARGET {
            "yes"
        } else {
            "**no**"
        };
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {met} |",
            m.page.label,
            m.page.reads,
            ms(median(&m.samples)),
            ms(p95),
            ms(p99(&m.samples)),
            ms(m.samples.last().copied().unwrap_or_default()),
            m.failures
        );
    }
}

/// The value of cookie `name` set by `response`.
fn cookie_value(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, v)| n.trim() == name && !v.is_empty())
        .map(|(_, v)| v.trim().to_owned())
}

/// The value of the first hidden `csrf` field of a page.
fn form_csrf(html: &str) -> Option<String> {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The problem a console page shows, if any (no secrets are on such a line).
fn problem_of(html: &str) -> Option<&str> {
    html.split("class=\"problem\" role=\"alert\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
}

/// Deletes the user's instance (a protective backup, then the runtime and
/// its gateway stop); an instance that is not there is fine.
async fn delete_instance(http: &Http, user: &str) -> anyhow::Result<()> {
    eprintln!("deleting the instance");
    let response = http
        .client
        .request(
            Method::DELETE,
            format!("{}/api/openclaw/instance", http.base),
        )
        .header("x-oa-internal-key", INTERNAL_KEY)
        .header("x-oa-user-id", user)
        .timeout(Duration::from_secs(240))
        .send()
        .await?;
    let status = response.status();
    if status.is_success() || status == StatusCode::NOT_FOUND {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    bail!("DELETE /api/openclaw/instance answered {status}: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_token_and_the_problem_are_read_from_a_page() {
        let html = "<form><input type=\"hidden\" name=\"csrf\" value=\"abc123\"></form>\
                    <p class=\"problem\" role=\"alert\">It failed.</p>";
        assert_eq!(form_csrf(html).as_deref(), Some("abc123"));
        assert_eq!(problem_of(html), Some("It failed."));
        assert_eq!(form_csrf("<p>no form</p>"), None);
    }
}
