//! The scene of the attack: `serve` on a fresh data directory with the
//! endpoints cells may reach started before it (the fake model and a marker
//! server, in `CLAWPLANE_CELL_ALLOW`), two tenants whose gateways are ready
//! (A, the attacker, signed up in the console with the fake as its model; B
//! through the API), and what the test knows of B and of the host, to
//! recognise it in A's output.

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clawplane_testkit::fake_openai::FakeOpenAi;
use reqwest::{Client, Method};
use serde_json::Value;

use crate::common::api::Api;
use crate::common::{processes_under, Reaper, Server, CONTROL_KEY};
use crate::console::{csrf, text_of, Visitor};
use crate::host::{cmdline_start, port_of, Allowed};
use crate::probes::{Check, Secret};

pub const INTERNAL_KEY: &str = "internal-key-for-cells-tests-0123456789ab";
pub const ENCRYPTION_KEY: &str = "c0ffee00d15ea5e5ba5eba11feedface0123456789abcdef0011223344556677";

/// `serve` and what runs beside it on the host.
pub struct Scene {
    pub data_dir: PathBuf,
    pub allowed: Allowed,
    pub fake: FakeOpenAi,
    pub server: Server,
    pub client: Client,
    _reaper: Reaper,
    _dir: tempfile::TempDir,
}

impl Scene {
    pub async fn start() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let reaper = Reaper(data_dir.clone());
        write_key_file(&data_dir);
        // First: serve hands the list of these endpoints to every cell.
        let allowed = Allowed::start().await;
        let fake = FakeOpenAi::start_tool_runner(&["No command in this message."]).await;
        let allow = format!("{},{}", fake.address, allowed.address);
        let server = Server::start(
            &data_dir,
            None,
            &[
                ("OA_INTERNAL_KEY", INTERNAL_KEY),
                ("OPENCLAW_ENCRYPTION_KEY", ENCRYPTION_KEY),
                ("CLAWPLANE_CELL_ALLOW", &allow),
                ("CLAWPLANE_CELL_EGRESS", "none"),
                ("CLAWPLANE_LOG", "info,sqlx=warn,hyper=warn,reqwest=warn"),
            ],
        );
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(180))
            .build()
            .unwrap();
        Scene {
            data_dir,
            allowed,
            fake,
            server,
            client,
            _reaper: reaper,
            _dir: dir,
        }
    }

    /// The API as `user`.
    pub fn api<'a>(&'a self, user: &'a str) -> Api<'a> {
        Api {
            client: self.client.clone(),
            server: &self.server,
            user,
            internal_key: INTERNAL_KEY,
        }
    }

    /// Deletes the instances of `users`, each answering 200.
    pub async fn delete_instances(&self, users: &[&str]) {
        for user in users {
            let (status, body) = self
                .api(user)
                .call(Method::DELETE, "/api/openclaw/instance")
                .await;
            assert_eq!(status, 200, "{body}");
        }
    }

    /// An instance's runtime directory.
    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.data_dir.join("instances").join(id)
    }
}

/// The key file `serve` would have generated beside its database (it reads
/// the key from the environment here; the file is one more target).
fn write_key_file(data_dir: &Path) {
    std::fs::create_dir_all(data_dir).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(data_dir.join("encryption.key"))
        .unwrap();
    std::io::Write::write_all(&mut file, ENCRYPTION_KEY.as_bytes()).unwrap();
}

/// The two tenants, their gateways running.
pub struct Tenants<'a> {
    /// A, signed in to the console.
    pub a: Visitor<'a>,
    pub a_user: String,
    pub a_id: String,
    pub b_user: String,
    pub b_id: String,
}

impl<'a> Tenants<'a> {
    pub async fn provision(scene: &'a Scene) -> Tenants<'a> {
        let b_user = format!("tenant-b-{}", uuid::Uuid::new_v4().simple());
        let (status, created) = scene
            .api(&b_user)
            .call(Method::POST, "/api/openclaw/instance")
            .await;
        assert_eq!(status, 200, "{created}");

        let mut a = Visitor {
            server: &scene.server,
            client: scene.client.clone(),
            cookies: HashMap::new(),
        };
        let (_, page) = a.get("/console/sign-up").await;
        let r = a
            .post(
                "/console/sign-up",
                &[
                    ("csrf", &csrf(&page)),
                    ("email", "tenant-a@example.com"),
                    ("password", "a long enough password"),
                ],
                None,
            )
            .await;
        assert_eq!(r.status().as_u16(), 303, "signed up");
        let (_, account) = a.get("/console/account").await;
        let a_user = text_of(&account, "user-id");
        let r = a
            .post("/console/create", &[("csrf", &csrf(&account))], None)
            .await;
        assert_eq!(r.status().as_u16(), 303);

        let a_id = ready(scene, &a_user).await;
        let b_id = ready(scene, &b_user).await;

        // A's gateway reads its new model when it starts again.
        scene
            .fake
            .configure(&scene.instance_dir(&a_id).join("openclaw/openclaw.json"))
            .expect("A's openclaw.json configured");
        let api = scene.api(&a_user);
        let (status, restarted) = api
            .call(Method::POST, "/api/openclaw/runtime/restart")
            .await;
        assert_eq!(status, 200, "{restarted}");
        wait_running(&api).await;
        Tenants {
            a,
            a_user,
            a_id,
            b_user,
            b_id,
        }
    }
}

/// Waits (bounded) until the user's instance is ready; its id.
async fn ready(scene: &Scene, user: &str) -> String {
    let instance = scene
        .api(user)
        .wait_for("ready", Duration::from_secs(240))
        .await;
    instance["id"].as_str().expect("an instance id").to_owned()
}

/// Waits (bounded) until the user's gateway runs; its runtime's status.
pub async fn wait_running(api: &Api<'_>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, status) = api.call(Method::GET, "/api/openclaw/runtime/status").await;
        if status["data"]["gateway"]["state"] == "running" {
            return status["data"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not run: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What A must not learn or reach.
pub struct Facts {
    /// Looked for in every output.
    pub secrets: Vec<Secret>,
    /// serve and B's processes (host pid), each as a [`Check::NoProcess`].
    pub processes: Vec<(Check, u32)>,
    pub serve_pid: u32,
    pub serve_port: u16,
    pub b_dir: PathBuf,
    pub b_runtime_port: u16,
    pub b_gateway_port: u16,
    pub a_runtime_port: u16,
}

impl Facts {
    pub async fn gather(scene: &Scene, tenants: &Tenants<'_>) -> Facts {
        let (a, b) = (scene.api(&tenants.a_user), scene.api(&tenants.b_user));
        let b_dir = scene.instance_dir(&tenants.b_id);
        let (_, record) = b
            .control(&format!(
                "/control/openclaw/instance?user_id={}",
                tenants.b_user
            ))
            .await;
        let b_runtime_url = record["data"]["runtime_url"]
            .as_str()
            .unwrap_or_else(|| panic!("B's runtime url: {record}"));
        let b_runtime = runtime_record(&b_dir);
        let a_runtime = runtime_record(&scene.instance_dir(&tenants.a_id));
        let b_gateway_pid = wait_running(&b).await["gateway"]["pid"]
            .as_u64()
            .expect("B's gateway pid");
        let secrets = vec![
            ("the encryption key".into(), ENCRYPTION_KEY.into()),
            (
                "serve's internal key (OA_INTERNAL_KEY)".into(),
                INTERNAL_KEY.into(),
            ),
            (
                "serve's control key (OA_CONTROL_KEY)".into(),
                CONTROL_KEY.into(),
            ),
            (
                "B's gateway token".into(),
                secret(&b, "gateway_token").await,
            ),
            (
                "B's service token".into(),
                secret(&b, "service_token").await,
            ),
            (
                "A's service token (its runtime agent's, outside the cell)".into(),
                secret(&a, "service_token").await,
            ),
            ("B's user id".into(), tenants.b_user.clone()),
            ("B's instance id".into(), tenants.b_id.clone()),
        ];
        let serve_pid = scene.server.child.id();
        let b_runtime_pid = b_runtime["pid"].as_u64().expect("B's runtime pid") as u32;
        Facts {
            secrets,
            processes: processes(serve_pid, &b_dir, b_runtime_pid, b_gateway_pid as u32),
            serve_pid,
            serve_port: port_of(&scene.server.address),
            b_runtime_port: port_of(b_runtime_url),
            b_gateway_port: b_runtime["gateway_port"]
                .as_u64()
                .expect("B's gateway port") as u16,
            a_runtime_port: a_runtime["listen_port"].as_u64().expect("A's runtime port") as u16,
            b_dir,
        }
    }
}

/// A secret of the control plane, read where only operators may.
async fn secret(api: &Api<'_>, name: &str) -> String {
    let path = format!(
        "/control/openclaw/instance/secret?user_id={}&name={name}",
        api.user
    );
    let (status, body) = api.control(&path).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} of {}: {body}", api.user))
        .to_owned()
}

/// The local provisioner's record of a runtime (pid and ports).
fn runtime_record(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("runtime.json")).expect("runtime.json");
    serde_json::from_str(&text).expect("runtime.json is JSON")
}

/// serve, and B's processes as the host sees them: its runtime agent, its
/// gateway and the gateway's workers (in a cell, also what the cell is
/// made of), each with the start of its command line.
fn processes(serve: u32, b_dir: &Path, b_runtime: u32, b_gateway: u32) -> Vec<(Check, u32)> {
    let mut b_pids: Vec<u32> = processes_under(b_dir)
        .into_iter()
        .map(|p| p as u32)
        .chain([b_runtime, b_gateway])
        .collect();
    b_pids.sort_unstable();
    b_pids.dedup();
    let hidden = std::iter::once(("serve".to_owned(), serve)).chain(
        b_pids
            .iter()
            .map(|pid| (format!("B's process {pid}"), *pid)),
    );
    let processes: Vec<(Check, u32)> = hidden
        .filter_map(|(what, pid)| {
            let cmdline = cmdline_start(pid)?;
            let check = Check::NoProcess {
                what: format!("{what} ({cmdline})"),
                pid,
                cmdline,
            };
            Some((check, pid))
        })
        .collect();
    assert!(
        processes.iter().any(|(_, pid)| *pid == b_runtime),
        "B's runtime agent is a process of this host: {b_pids:?}"
    );
    processes
}
