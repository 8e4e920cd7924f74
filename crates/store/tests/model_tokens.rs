//! Model tokens: sealed with their digest, found by it, replaced by a new
//! one, gone with the instance's other secrets; on both backends.

use clawplane_domain::{InstanceFields, SecretName, UserId};
use clawplane_secrets::{
    generate_token, token_digest, EncryptionKey, ExposeSecret, KeyRing, SecretString,
};
use clawplane_store::{NewInstance, Vault};
use clawplane_testkit::{backend_tests, TestDb};

backend_tests!(
    a_model_token_is_found_by_its_digest_until_replaced_or_deleted,
    |db: TestDb| async move {
        let vault = Vault::new(db.store.clone(), KeyRing::new(EncryptionKey::generate()));
        let a = db
            .store
            .create_instance(NewInstance {
                user_id: UserId::parse("alice").unwrap(),
                fields: InstanceFields::default(),
            })
            .await
            .unwrap();
        let first = generate_token();
        vault.put_model_token(a.id, &first).await.unwrap();
        let digest = |t: &SecretString| token_digest(t.expose_secret());

        let found = db
            .store
            .live_instance_by_model_token_digest(&digest(&first))
            .await
            .unwrap()
            .expect("found by its digest");
        assert_eq!(found.id, a.id);
        assert!(found.has_secret(SecretName::ModelToken));
        let opened = vault.get(a.id, SecretName::ModelToken).await.unwrap();
        assert_eq!(opened.unwrap().expose_secret(), first.expose_secret());
        let unknown = SecretString::from("not-a-token".to_owned());
        assert!(db
            .store
            .live_instance_by_model_token_digest(&digest(&unknown))
            .await
            .unwrap()
            .is_none());

        // Re-provisioning rotates it: the old token finds nothing.
        let second = generate_token();
        vault.put_model_token(a.id, &second).await.unwrap();
        assert!(db
            .store
            .live_instance_by_model_token_digest(&digest(&first))
            .await
            .unwrap()
            .is_none());
        assert!(db
            .store
            .live_instance_by_model_token_digest(&digest(&second))
            .await
            .unwrap()
            .is_some());

        // A delete clears it with the other secrets.
        db.store.clear_all_secrets(a.id).await.unwrap();
        assert!(db
            .store
            .live_instance_by_model_token_digest(&digest(&second))
            .await
            .unwrap()
            .is_none());
        assert!(vault
            .get(a.id, SecretName::ModelToken)
            .await
            .unwrap()
            .is_none());
    }
);

#[test]
fn the_model_token_is_not_a_name_the_operator_can_write() {
    assert_eq!(SecretName::parse("model_token"), None);
    assert_eq!(
        SecretName::parse("provider_keys"),
        Some(SecretName::ProviderKeys)
    );
}
