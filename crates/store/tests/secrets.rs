//! Encrypted secrets in the store: sealing, row binding and rotation, on both backends.

use clawplane_domain::{InstanceFields, InstanceStatus, SecretName, UserId};
use clawplane_secrets::{DecryptError, EncryptionKey, ExposeSecret, KeyRing, SecretString};
use clawplane_store::{NewInstance, Store, Vault, VaultError};
use clawplane_testkit::{backend_tests, TestDb};
use sqlx::Row;

async fn instance(store: &Store, user: &str) -> clawplane_domain::Instance {
    store
        .create_instance(NewInstance {
            user_id: UserId::parse(user).unwrap(),
            fields: InstanceFields::default(),
        })
        .await
        .unwrap()
}

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

backend_tests!(
    secrets_round_trip_and_are_stored_only_as_ciphertext,
    |db: TestDb| async move {
        let vault = Vault::new(db.store.clone(), KeyRing::new(EncryptionKey::generate()));
        let a = instance(&db.store, "alice").await;
        vault
            .put(
                a.id,
                SecretName::ServiceToken,
                &secret("service-token-plaintext"),
            )
            .await
            .unwrap();
        vault
            .put(
                a.id,
                SecretName::ProviderKeys,
                &secret(r#"{"openai":"sk-test"}"#),
            )
            .await
            .unwrap();

        let read = vault
            .get(a.id, SecretName::ServiceToken)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.expose_secret(), "service-token-plaintext");
        assert!(vault
            .get(a.id, SecretName::GatewayToken)
            .await
            .unwrap()
            .is_none());

        let shown = db.store.instance(a.id).await.unwrap();
        assert_eq!(
            shown.secrets,
            vec![SecretName::ServiceToken, SecretName::ProviderKeys]
        );
        let json = serde_json::to_string(&shown).unwrap();
        assert!(!json.contains("service-token-plaintext") && !json.contains("sk-test"));

        let sealed = db
            .store
            .get_secret(a.id, SecretName::ServiceToken)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sealed.alg, "aes-256-gcm");
        assert_eq!(sealed.nonce.len(), 12);
        assert_eq!(sealed.key_id, vault.keys().current().id().as_str());
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"service"));

        // Replacing and clearing work; a deleted instance's secrets are gone.
        vault
            .put(a.id, SecretName::ServiceToken, &secret("rotated"))
            .await
            .unwrap();
        assert_eq!(
            vault
                .get(a.id, SecretName::ServiceToken)
                .await
                .unwrap()
                .unwrap()
                .expose_secret(),
            "rotated"
        );
        db.store
            .clear_secret(a.id, SecretName::ProviderKeys)
            .await
            .unwrap();
        assert!(vault
            .get(a.id, SecretName::ProviderKeys)
            .await
            .unwrap()
            .is_none());
        db.store
            .set_instance_status(a.id, InstanceStatus::Deleted, None)
            .await
            .unwrap();
        db.store.clear_all_secrets(a.id).await.unwrap();
        assert!(vault
            .get(a.id, SecretName::ServiceToken)
            .await
            .unwrap()
            .is_none());
        assert!(vault
            .put(a.id, SecretName::ServiceToken, &secret("x"))
            .await
            .is_err());
    }
);

backend_tests!(
    a_ciphertext_copied_to_another_row_or_name_fails_to_decrypt,
    |db: TestDb| async move {
        let vault = Vault::new(db.store.clone(), KeyRing::new(EncryptionKey::generate()));
        let a = instance(&db.store, "alice").await;
        let b = instance(&db.store, "bob").await;
        vault
            .put(a.id, SecretName::ServiceToken, &secret("alice-token"))
            .await
            .unwrap();
        let sealed = db
            .store
            .get_secret(a.id, SecretName::ServiceToken)
            .await
            .unwrap()
            .unwrap();

        // An attacker with write access to the table copies the columns around.
        db.store
            .put_secret(b.id, SecretName::ServiceToken, &sealed)
            .await
            .unwrap();
        db.store
            .put_secret(a.id, SecretName::GatewayToken, &sealed)
            .await
            .unwrap();
        for (id, name) in [
            (b.id, SecretName::ServiceToken),
            (a.id, SecretName::GatewayToken),
        ] {
            let err = vault.get(id, name).await.unwrap_err();
            assert!(
                matches!(err, VaultError::Decrypt(DecryptError::Authentication)),
                "{err}"
            );
            assert!(err
                .to_string()
                .contains("belongs to another row or secret name"));
        }
        assert_eq!(
            vault
                .get(a.id, SecretName::ServiceToken)
                .await
                .unwrap()
                .unwrap()
                .expose_secret(),
            "alice-token"
        );
    }
);

backend_tests!(
    a_store_read_with_the_wrong_key_fails_clearly,
    |db: TestDb| async move {
        let a = instance(&db.store, "alice").await;
        Vault::new(db.store.clone(), KeyRing::new(EncryptionKey::generate()))
            .put(a.id, SecretName::GatewayToken, &secret("gw"))
            .await
            .unwrap();
        let stranger = Vault::new(db.store.clone(), KeyRing::new(EncryptionKey::generate()));
        let err = stranger
            .get(a.id, SecretName::GatewayToken)
            .await
            .unwrap_err();
        assert!(
            matches!(err, VaultError::Decrypt(DecryptError::UnknownKey(_))),
            "{err}"
        );
        assert!(err.to_string().contains("OPENCLAW_ENCRYPTION_KEY_PREVIOUS"));
    }
);

backend_tests!(
    rotation_reencrypts_every_secret_under_the_current_key,
    |db: TestDb| async move {
        let old = EncryptionKey::generate();
        let new = EncryptionKey::generate();
        let before = Vault::new(db.store.clone(), KeyRing::new(old.clone()));
        let mut ids = Vec::new();
        for i in 0..5 {
            let inst = instance(&db.store, &format!("user-{i}")).await;
            before
                .put(
                    inst.id,
                    SecretName::ServiceToken,
                    &secret(&format!("svc-{i}")),
                )
                .await
                .unwrap();
            before
                .put(
                    inst.id,
                    SecretName::GatewayToken,
                    &secret(&format!("gw-{i}")),
                )
                .await
                .unwrap();
            ids.push(inst.id);
        }

        let rotating = Vault::new(
            db.store.clone(),
            KeyRing::new(new.clone()).with_previous([old]),
        );
        // Reads work before the rotation, through the previous key.
        assert_eq!(
            rotating
                .get(ids[0], SecretName::ServiceToken)
                .await
                .unwrap()
                .unwrap()
                .expose_secret(),
            "svc-0"
        );
        let report = rotating.rotate().await.unwrap();
        assert_eq!(report.reencrypted, 10);
        assert!(report.failed.is_empty());
        assert_eq!(
            rotating.rotate().await.unwrap().reencrypted,
            0,
            "a second run has nothing to do"
        );

        let only_new = Vault::new(db.store.clone(), KeyRing::new(new));
        for (i, id) in ids.iter().enumerate() {
            let gw = only_new
                .get(*id, SecretName::GatewayToken)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(gw.expose_secret(), format!("gw-{i}"));
        }
    }
);

backend_tests!(
    rotation_never_overwrites_a_secret_written_meanwhile,
    |db: TestDb| async move {
        let old = EncryptionKey::generate();
        let new = EncryptionKey::generate();
        let a = instance(&db.store, "alice").await;
        Vault::new(db.store.clone(), KeyRing::new(old.clone()))
            .put(a.id, SecretName::ServiceToken, &secret("stale"))
            .await
            .unwrap();
        let stale = db
            .store
            .get_secret(a.id, SecretName::ServiceToken)
            .await
            .unwrap()
            .unwrap();

        // The running server writes a new value (under the new key) after the
        // rotation read the old one; the rotation's swap must then fail.
        let server = Vault::new(
            db.store.clone(),
            KeyRing::new(new.clone()).with_previous([old.clone()]),
        );
        server
            .put(a.id, SecretName::ServiceToken, &secret("fresh"))
            .await
            .unwrap();
        let ring = KeyRing::new(new).with_previous([old]);
        let ctx_row = a.id.to_string();
        let ctx = clawplane_secrets::SecretContext {
            table: "openclaw_instances",
            row_id: &ctx_row,
            name: "service_token",
        };
        let resealed = ring.seal(ctx, &ring.open(ctx, &stale).unwrap());
        let swapped = db
            .store
            .replace_secret_if_unchanged(a.id, SecretName::ServiceToken, &stale, &resealed)
            .await
            .unwrap();
        assert!(!swapped);
        assert_eq!(
            server
                .get(a.id, SecretName::ServiceToken)
                .await
                .unwrap()
                .unwrap()
                .expose_secret(),
            "fresh"
        );
    }
);

backend_tests!(
    secret_columns_keep_the_seeds_names,
    |db: TestDb| async move {
        let vault = Vault::new(db.store.clone(), KeyRing::new(EncryptionKey::generate()));
        let a = instance(&db.store, "alice").await;
        vault
            .put(a.id, SecretName::ServiceToken, &secret("t"))
            .await
            .unwrap();
        let url = db.url.clone();
        let conn = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        let row = sqlx::query(
        "SELECT service_token_encrypted, service_token_iv, service_token_alg, service_token_key_id \
         FROM openclaw_instances WHERE id = $1",
    )
    .bind(a.id.to_string())
    .fetch_one(&conn)
    .await
    .unwrap();
        let alg: String = row.get("service_token_alg");
        assert_eq!(alg, "aes-256-gcm");
        let iv: Vec<u8> = row.get("service_token_iv");
        assert_eq!(iv.len(), 12);
        conn.close().await;
    }
);
