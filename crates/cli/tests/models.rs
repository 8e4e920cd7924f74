//! Models included, end to end with the real binary and a real gateway in
//! its cell: `serve --models` with the loopback fake provider as the
//! operator's upstream; a fresh instance chats at once, with no key typed
//! anywhere, through the model proxy (the cell reaches only the proxy);
//! every model call the fake answered is one ledger entry of exactly its
//! usage at the file's prices; the operator's upstream key is nowhere the
//! tenant can read (the instance's files, the runtime's log) and not in
//! serve's log. Everything stays on 127.0.0.1.

mod common;
#[path = "chat/console.rs"]
mod console;

use std::collections::HashMap;
use std::time::Duration;

use clawplane_testkit::fake_openai::FakeOpenAi;
use common::api::Api;
use common::{Reaper, Server};
use console::{csrf, events, text_of, Visitor};
use reqwest::{Client, Method};

const INTERNAL_KEY: &str = "internal-key-for-models-tests-0123456789";
const ENCRYPTION_KEY: &str = "00112233445566778899aabbccddeeff5f4e3d2c1b0a99887766554433221100";
const UPSTREAM_KEY: &str = "sk-operator-upstream-key-never-in-a-cell-0123";
const PIECES: &[&str] = &["Included", " models", " answer."];

/// Every file under `dir` (bounded), with its path.
fn files_under(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            files_under(&path, out);
        } else if meta.is_file() && meta.len() < 64 * 1024 * 1024 && out.len() < 100_000 {
            out.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
        }
    }
}

#[tokio::test]
async fn a_fresh_instance_chats_through_the_model_proxy_and_pays_exactly_its_usage() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let _reaper = Reaper(data_dir.clone());
    let fake = FakeOpenAi::start(PIECES).await;
    let models = dir.path().join("models.toml");
    std::fs::write(
        &models,
        format!(
            r#"
default = "included"
[[providers]]
id = "upstream"
base_url = "{}"
api_key_env = "CLAWPLANE_TEST_UPSTREAM_KEY"
[[providers.models]]
id = "included"
upstream = "fake-model"
input_per_million = 1000000
output_per_million = 2000000
cached_per_million = 500000
max_output_tokens = 1024
context_window = 32000
"#,
            fake.base_url
        ),
    )
    .unwrap();
    let proxy_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{proxy_port}");
    let server = Server::start(
        &data_dir,
        None,
        &[
            ("OA_INTERNAL_KEY", INTERNAL_KEY),
            ("OPENCLAW_ENCRYPTION_KEY", ENCRYPTION_KEY),
            ("CLAWPLANE_LOG", "debug,sqlx=warn,hyper=warn,reqwest=warn"),
            ("CLAWPLANE_MODELS", models.to_str().unwrap()),
            ("CLAWPLANE_MODELS_LISTEN", &listen),
            ("CLAWPLANE_TEST_UPSTREAM_KEY", UPSTREAM_KEY),
        ],
    );
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut ana = Visitor {
        server: &server,
        client: client.clone(),
        cookies: HashMap::new(),
    };
    let (_, page) = ana.get("/console/sign-up").await;
    let r = ana
        .post(
            "/console/sign-up",
            &[
                ("csrf", &csrf(&page)),
                ("email", "models@example.com"),
                ("password", "a long enough password"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status().as_u16(), 303, "signed up");
    let (_, account) = ana.get("/console/account").await;
    let user = text_of(&account, "user-id");
    let r = ana
        .post("/console/create", &[("csrf", &csrf(&account))], None)
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let api = Api {
        client: client.clone(),
        server: &server,
        user: &user,
        internal_key: INTERNAL_KEY,
    };
    let ready = api.wait_for("ready", Duration::from_secs(240)).await;
    let id = ready["id"].as_str().expect("an instance id").to_owned();
    assert!(
        ready["secrets"].to_string().contains("model_token"),
        "the instance has a model token: {ready}"
    );

    // No key typed anywhere: the Chat page says the included models answer
    // (not that a key is missing), and the first message is answered so.
    let (_, page) = ana.get("/console/chat").await;
    assert!(
        page.contains("id=\"chat-included\"") && !page.contains("id=\"chat-no-key\""),
        "{page}"
    );
    let message = format!("hello {}", uuid::Uuid::new_v4().simple());
    let r = ana
        .post(
            "/console/chat",
            &[("csrf", &csrf(&page)), ("message", &message)],
            Some("text/event-stream"),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let stream = r.text().await.unwrap_or_default();
    let answer: String = events(&stream)
        .iter()
        .filter(|(n, _)| n == "delta")
        .filter_map(|(_, d)| d.as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        answer,
        fake.answer(),
        "the included model answered: {stream}"
    );
    let asked = fake.requests();
    assert!(!asked.is_empty(), "the upstream was called");
    assert!(
        asked.iter().any(|r| r.to_string().contains(&message)),
        "the user's message reached the upstream"
    );
    assert!(
        asked.iter().all(|r| r["model"] == "fake-model"),
        "the proxy names the upstream's model: {asked:?}"
    );

    // Every call the upstream answered is one entry of exactly its usage:
    // 10 prompt tokens at $1/M and one completion token per piece at $2/M.
    let (status, ledger) = api
        .call(Method::GET, "/api/openclaw/billing/ledger?limit=100")
        .await;
    assert_eq!(status, 200, "{ledger}");
    let entries = ledger["data"]["entries"].as_array().unwrap().clone();
    let model: Vec<_> = entries.iter().filter(|e| e["source"] == "model").collect();
    assert_eq!(
        model.len(),
        asked.len(),
        "one entry per model call: {ledger}"
    );
    let per_call = 10 + 2 * PIECES.len() as i64;
    for entry in &model {
        assert_eq!(
            entry["amount_micro_usd"].as_i64(),
            Some(-per_call),
            "{entry}"
        );
        assert_eq!(entry["meta"]["model"], "included", "{entry}");
    }

    // The Billing page and the API's usage show the same spend.
    let (status, billing) = ana.get("/console/billing").await;
    assert_eq!(status, 200);
    assert!(
        billing.contains("id=\"model-spend\"") && billing.contains("<td>included</td>"),
        "{billing}"
    );
    let (status, usage) = api.call(Method::GET, "/api/openclaw/billing/usage").await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(
        usage["data"]["total_micro_usd"].as_i64(),
        Some(per_call * model.len() as i64),
        "{usage}"
    );

    // The operator's key is nowhere the tenant can read, nor in serve's log.
    let mut files = Vec::new();
    files_under(&data_dir.join("instances").join(&id), &mut files);
    assert!(!files.is_empty());
    for (path, bytes) in &files {
        assert!(
            !String::from_utf8_lossy(bytes).contains(UPSTREAM_KEY),
            "the upstream key is in {}",
            path.display()
        );
    }
    assert!(
        !server.stderr().contains(UPSTREAM_KEY),
        "the upstream key is in serve's log"
    );
    // Nor in the environment or command line of anything the instance
    // runs (the runtime agent, its gateway, the cell's helpers), as its own
    // processes could read them.
    let serve_pid = server.child.id() as i32;
    let pids: Vec<_> = common::processes_under(&data_dir)
        .into_iter()
        .filter(|pid| *pid != serve_pid)
        .collect();
    assert!(!pids.is_empty(), "the instance's processes are found");
    for pid in pids {
        for what in ["environ", "cmdline"] {
            let bytes = std::fs::read(format!("/proc/{pid}/{what}")).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(UPSTREAM_KEY),
                "the upstream key is in /proc/{pid}/{what}"
            );
        }
    }

    // Credits run out: the next message is refused by the proxy, and the
    // chat says so and where to top up, instead of blaming a key.
    let (status, summary) = api.call(Method::GET, "/api/openclaw/billing/summary").await;
    assert_eq!(status, 200, "{summary}");
    let left = summary["data"]["balance_micro_usd"]
        .as_i64()
        .unwrap_or_else(|| panic!("a balance: {summary}"));
    let burn = common::clawplane()
        .args(["admin", "credits", "burn", "--user", &user])
        .args([
            "--amount",
            &format!("{}.{:06}", left / 1_000_000, left % 1_000_000),
        ])
        .env("CLAWPLANE_DATA_DIR", &data_dir)
        .env("OPENCLAW_ENCRYPTION_KEY", ENCRYPTION_KEY)
        .output()
        .unwrap();
    assert!(
        burn.status.success(),
        "{}",
        String::from_utf8_lossy(&burn.stderr)
    );
    let asked_before = fake.requests().len();
    let (_, page) = ana.get("/console/chat").await;
    let r = ana
        .post(
            "/console/chat",
            &[("csrf", &csrf(&page)), ("message", "one more question")],
            Some("text/event-stream"),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let stream = r.text().await.unwrap_or_default();
    let said = events(&stream);
    let error = said
        .iter()
        .find(|(n, _)| n == "error")
        .map(|(_, d)| d.clone())
        .unwrap_or_else(|| panic!("the chat shows an error: {stream}"));
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("credits have run out")),
        "the chat says the credits ran out: {stream}"
    );
    assert_eq!(error["href"], "/console/billing", "{stream}");
    assert_eq!(
        fake.requests().len(),
        asked_before,
        "nothing reached the upstream without credits"
    );

    let (status, body) = api.call(Method::DELETE, "/api/openclaw/instance").await;
    assert_eq!(status, 200, "{body}");
}
