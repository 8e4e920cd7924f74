//! `spawn_agent`: a real agent (in this test process) over a temporary state
//! directory, free loopback ports and a real gateway.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clawplane_runtime::gateway::config_file::BindMode;
use clawplane_runtime::{install, Agent, RuntimeConfig};
use clawplane_secrets::SecretString;
use reqwest::{Client, Method, RequestBuilder};
use serde_json::Value;

pub const SERVICE_TOKEN: &str = "service-token-for-runtime-tests-0123456789";

pub struct Options {
    pub state_dir: Option<PathBuf>,
    pub backup_url: Option<String>,
    pub autostart: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            state_dir: None,
            backup_url: None,
            autostart: true,
        }
    }
}

pub struct TestAgent {
    pub url: String,
    pub client: Client,
    pub gateway_port: u16,
    pub gateway_token: String,
    _dir: Option<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn spawn_agent(options: Options) -> TestAgent {
    spawn_agent_with(options, |_| {}).await
}

/// [`spawn_agent`] with a chance to change the configuration.
pub async fn spawn_agent_with(
    options: Options,
    tweak: impl FnOnce(&mut RuntimeConfig),
) -> TestAgent {
    let (dir, state_dir) = match options.state_dir {
        Some(path) => (None, path),
        None => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("runtime");
            (Some(dir), path)
        }
    };
    let gateway_port = free_port();
    let gateway_token = format!("gw-{}", uuid::Uuid::new_v4().simple());
    let backup_url = options.backup_url.unwrap_or_else(|| {
        format!(
            "file://{}",
            state_dir.parent().unwrap().join("backups").display()
        )
    });
    let mut config = RuntimeConfig {
        state_dir: state_dir.clone(),
        gateway_port,
        bind: BindMode::Loopback,
        service_token: SecretString::from(SERVICE_TOKEN.to_owned()),
        gateway_token: SecretString::from(gateway_token.clone()),
        dev_mode: false,
        instance_id: "test-instance".into(),
        instance_type: "test".into(),
        openclaw_version: install::DEFAULT_OPENCLAW_VERSION.into(),
        cache_dir: install::default_cache_dir(),
        backup_url,
        s3: Default::default(),
        backup_interval: Duration::from_secs(3600),
        keep_last: 10,
        keep_daily_days: 7,
        provider_env: Vec::new(),
        body_limit: 64 * 1024,
        stop_grace: Duration::from_secs(20),
        autostart: options.autostart,
        // A cell of its own: a uid nobody else's test holds at once.
        models: None,
        cell: Some(
            clawplane_runtime::cell::CellSettings::new(
                2_100_000 + u32::from(gateway_port),
                &format!("test-{gateway_port}"),
            )
            .unwrap(),
        ),
    };
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent = Agent::build(config, listener)
        .await
        .expect("the agent builds (is OpenClaw installed? run ./scripts/test)");
    let url = format!("http://{}", agent.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(agent.run(async move {
        let _ = rx.await;
    }));
    TestAgent {
        url,
        client: Client::builder()
            .timeout(Duration::from_secs(240))
            .no_proxy()
            .build()
            .unwrap(),
        gateway_port,
        gateway_token,
        _dir: dir,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

impl TestAgent {
    /// A `/v1` request with the service token.
    pub fn v1(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .header("x-openagents-service-token", SERVICE_TOKEN)
    }

    pub async fn call(&self, method: Method, path: &str) -> (u16, Value) {
        send(self.v1(method, path)).await
    }

    pub async fn call_json(&self, method: Method, path: &str, body: Value) -> (u16, Value) {
        send(self.v1(method, path).json(&body)).await
    }

    /// Waits (bounded) until the gateway runs.
    pub async fn wait_running(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let (_, status) = self.call(Method::GET, "/v1/status").await;
            if status["data"]["gateway"]["state"] == "running" {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not run in time: {status}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.gateway_port)
    }

    /// Stops the agent like SIGTERM would.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

pub async fn send(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    assert_eq!(
        body["ok"].as_bool(),
        Some(status < 400),
        "envelope: {status} {text}"
    );
    if status >= 400 {
        assert!(
            body["error"]["code"].is_string() && body["error"]["message"].is_string(),
            "{text}"
        );
    }
    (status, body)
}

/// Processes whose process group is `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) {
            out.push(pid);
        }
    }
    out
}

/// Waits (bounded) until `check` holds.
pub async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
