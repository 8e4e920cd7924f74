//! The binary as an operator meets it: start-up errors, the generated key,
//! admin commands, and key rotation end to end.

mod common;

use std::os::unix::fs::PermissionsExt;

use clawplane_domain::{InstanceFields, SecretName, UserId};
use clawplane_secrets::{EncryptionKey, ExposeSecret, KeyRing, SecretString};
use clawplane_store::{NewInstance, Store, Vault};
use common::{clawplane, Server};

fn run(cmd: &mut std::process::Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn encryption_key_errors_are_distinct_and_say_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("", "OPENCLAW_ENCRYPTION_KEY is empty"),
        ("abcd", "must decode to 32 bytes"),
        ("!!!!", "neither 64 hex characters nor valid base64"),
    ];
    for (value, expected) in cases {
        let (ok, _, err) = run(clawplane()
            .args(["admin", "secrets", "rotate"])
            .env("CLAWPLANE_DATA_DIR", dir.path())
            .env("OPENCLAW_ENCRYPTION_KEY", value));
        assert!(!ok);
        assert!(err.contains(expected), "{value:?}: {err}");
    }
}

#[tokio::test]
async fn postgres_requires_a_configured_key() {
    let (url, name) = clawplane_testkit::create_postgres_database().await;
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(clawplane()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CLAWPLANE_DATA_DIR", dir.path())
        .env("DATABASE_URL", &url));
    assert!(!ok);
    assert!(err.contains("OPENCLAW_ENCRYPTION_KEY is not set"), "{err}");
    assert!(
        !dir.path().join("encryption.key").exists(),
        "no key file with PostgreSQL"
    );
    clawplane_testkit::drop_postgres_database(&name).await;
}

#[test]
fn bad_settings_fail_at_start_with_a_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(clawplane()
        .args(["serve", "--listen", "not-an-address"])
        .env("CLAWPLANE_DATA_DIR", dir.path()));
    assert!(!ok && err.contains("--listen"), "{err}");
    let (ok, _, err) = run(clawplane()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CLAWPLANE_DATA_DIR", dir.path())
        .env("CLAWPLANE_MONTHLY_GRANT_USD", "ten"));
    assert!(!ok && err.contains("monthly-grant-usd"), "{err}");
    let (ok, _, err) = run(clawplane()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CLAWPLANE_DATA_DIR", dir.path())
        .env("DATABASE_URL", "mysql://localhost/x"));
    assert!(
        !ok && err.contains("DATABASE_URL must start with postgres://"),
        "{err}"
    );
}

#[test]
fn a_port_in_use_is_one_readable_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(clawplane()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("CLAWPLANE_DATA_DIR", dir.path()));
    assert!(!ok);
    assert!(err.contains("the port may be in use"), "{err}");
}

#[tokio::test]
async fn the_embedded_default_generates_a_private_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, None, &[]);
    let key_path = data.join("encryption.key");
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(server.stderr().contains("generated a new encryption key"));
    let first = std::fs::read_to_string(&key_path).unwrap();
    assert!(
        !server.stderr().contains(first.trim()),
        "the key itself is never logged"
    );
    server.kill9();
    let server = Server::start(&data, None, &[]);
    assert_eq!(
        std::fs::read_to_string(&key_path).unwrap(),
        first,
        "reused, not regenerated"
    );
    assert!(!server.stderr().contains("generated a new encryption key"));
}

#[tokio::test]
async fn admin_credits_round_trip_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let base = |args: &[&str]| {
        let mut c = clawplane();
        c.args(["admin", "credits"])
            .args(args)
            .env("CLAWPLANE_DATA_DIR", dir.path());
        c
    };
    let (ok, out, err) = run(&mut base(&[
        "grant",
        "--user",
        "ana",
        "--amount",
        "12.345",
        "--idempotency-key",
        "g1",
    ]));
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["balance_usd"].to_string(), "12.35");
    let (ok, out, _) = run(&mut base(&[
        "grant",
        "--user",
        "ana",
        "--amount",
        "12.345",
        "--idempotency-key",
        "g1",
    ]));
    assert!(ok);
    assert!(out.contains("\"replayed\": true"));
    let (ok, _, err) = run(&mut base(&["burn", "--user", "ana", "--amount", "20"]));
    assert!(!ok && err.contains("insufficient credits"), "{err}");
    let (ok, _, err) = run(&mut base(&["burn", "--user", "ana", "--amount", "0"]));
    assert!(
        !ok && err.contains("amount_usd must be greater than zero"),
        "{err}"
    );
    let (ok, out, _) = run(&mut base(&["burn", "--user", "ana", "--amount", "2.345"]));
    assert!(ok);
    assert!(out.contains("\"balance_micro_usd\": 10000000"), "{out}");
    let (ok, out, _) = run(&mut base(&["ledger", "--user", "ana", "--limit", "1"]));
    assert!(ok);
    let page: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    assert!(page["next_cursor"].is_string());
    let (ok, out, _) = run(&mut base(&["verify"]));
    assert!(ok);
    assert!(out.contains("\"clean\": true"));
}

#[tokio::test]
async fn admin_rotation_reencrypts_under_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let old = EncryptionKey::generate();
    let new = EncryptionKey::generate();
    let store = Store::open_sqlite_dir(dir.path(), &Default::default())
        .await
        .unwrap();
    let instance = store
        .create_instance(NewInstance {
            user_id: UserId::parse("ana").unwrap(),
            fields: InstanceFields::default(),
        })
        .await
        .unwrap();
    Vault::new(store.clone(), KeyRing::new(old.clone()))
        .put(
            instance.id,
            SecretName::GatewayToken,
            &SecretString::from("gw-secret".to_owned()),
        )
        .await
        .unwrap();

    let (ok, out, err) = run(clawplane()
        .args(["admin", "secrets", "rotate"])
        .env("CLAWPLANE_DATA_DIR", dir.path())
        .env("OPENCLAW_ENCRYPTION_KEY", new.to_hex().as_str())
        .env("OPENCLAW_ENCRYPTION_KEY_PREVIOUS", old.to_hex().as_str()));
    assert!(ok, "{err}");
    assert!(out.contains("\"reencrypted\": 1"), "{out}");
    assert!(!out.contains("gw-secret") && !err.contains("gw-secret"));

    let only_new = Vault::new(store.clone(), KeyRing::new(new));
    let read = only_new
        .get(instance.id, SecretName::GatewayToken)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.expose_secret(), "gw-secret");
    store.close().await;
}
