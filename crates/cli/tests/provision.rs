//! The `local` provisioner with the real `clawplane runtime` and a real
//! gateway: provision, find again after a "restart" of the control plane
//! (a new provisioner over the same data directory) without a second
//! runtime, and remove with no process left.

use std::time::{Duration, Instant};

use clawplane_domain::{Instance, InstanceId};
use clawplane_secrets::SecretString;
use clawplane_server::provision::local::{LocalProvisioner, LocalSettings};
use clawplane_server::provision::{Provisioner, RuntimeSecrets};
use clawplane_server::runtime_client::{ClientOptions, RuntimeClient, RuntimeTarget};

fn instance() -> Instance {
    clawplane_testkit::provisioning_instance("provision-test")
}

fn provisioner(data_dir: &std::path::Path) -> LocalProvisioner {
    LocalProvisioner::new(LocalSettings {
        data_dir: data_dir.to_path_buf(),
        binary: env!("CARGO_BIN_EXE_clawplane").into(),
        cache_dir: clawplane_runtime::install::default_cache_dir(),
        start_timeout: Duration::from_secs(60),
        stop_timeout: Duration::from_secs(60),
        cell_uid_base: Some(clawplane_server::provision::local::DEFAULT_CELL_UID_BASE),
        runtime_args: Vec::new(),
    })
}

/// `clawplane runtime` processes serving this instance.
fn runtimes_of(id: InstanceId) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains("runtime")
            && cmd.contains(&id.to_string())
            && clawplane_runtime::gateway::process::is_alive(pid)
        {
            out.push(pid);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_runtime_is_provisioned_found_again_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let inst = instance();
    let secrets = RuntimeSecrets {
        service_token: SecretString::from("provision-service-token-0123456789".to_owned()),
        gateway_token: SecretString::from("provision-gateway-token-0123456789".to_owned()),
        provider_keys: None,
        model_token: None,
    };
    let fields = provisioner(dir.path())
        .provision(&inst, &secrets)
        .await
        .unwrap();
    let url = fields.runtime_url.clone().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"));
    assert_eq!(
        fields.runtime_name.as_deref(),
        Some(LocalProvisioner::runtime_name(inst.id).as_str())
    );
    let target = RuntimeTarget {
        base_url: url.clone(),
        service_token: secrets.service_token.clone(),
    };
    let client = RuntimeClient::new(ClientOptions::default());
    let deadline = Instant::now() + Duration::from_secs(240);
    let gateway_pid = loop {
        let status = client.status(&target).await.unwrap();
        assert_eq!(status.instance_id, inst.id.to_string());
        if status.gateway.state == clawplane_http::v1::GatewayState::Running {
            break status.gateway.pid.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not start: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let first = runtimes_of(inst.id);
    assert_eq!(first.len(), 1, "one runtime: {first:?}");

    // The control plane restarts: a new provisioner finds the same runtime.
    let again = provisioner(dir.path())
        .ensure_running(&inst, &secrets)
        .await
        .unwrap();
    assert_eq!(again.runtime_url.as_deref(), Some(url.as_str()));
    assert_eq!(runtimes_of(inst.id), first, "never duplicated");
    assert!(
        clawplane_runtime::gateway::process::is_alive(gateway_pid),
        "the gateway kept running"
    );

    // Remove: the runtime backs up, stops its gateway and exits.
    provisioner(dir.path()).remove(&inst).await.unwrap();
    assert!(runtimes_of(inst.id).is_empty());
    assert!(!clawplane_runtime::gateway::process::is_alive(gateway_pid));
    assert!(!dir
        .path()
        .join("instances")
        .join(inst.id.to_string())
        .exists());
    let backups = dir.path().join("backups").join(inst.id.to_string());
    assert!(backups.exists(), "a protective backup was kept");
}
