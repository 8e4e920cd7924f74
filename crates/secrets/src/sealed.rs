//! AES-256-GCM sealing of one secret, bound to its row and name.
//!
//! What is stored per secret: the ciphertext with its 16-byte tag, the 96-bit
//! nonce, the algorithm name and the key id. The associated data is
//! `clawplane/v1 \0 <table> \0 <row id> \0 <secret name>`, so a ciphertext
//! copied onto another row, or under another secret name, fails to decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::key::{KeyId, KeyRing};

/// The only algorithm written today; stored beside each ciphertext so a
/// future one can be introduced without guessing.
pub const ALGORITHM: &str = "aes-256-gcm";
const NONCE_LEN: usize = 12;

/// Where a secret lives: bound into the ciphertext as associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretContext<'a> {
    /// The table holding the secret, e.g. `openclaw_instances`.
    pub table: &'a str,
    /// The row's primary key.
    pub row_id: &'a str,
    /// The secret's name, e.g. `service_token`.
    pub name: &'a str,
}

impl SecretContext<'_> {
    fn associated_data(&self) -> Vec<u8> {
        let mut aad =
            Vec::with_capacity(16 + self.table.len() + self.row_id.len() + self.name.len());
        for part in ["clawplane/v1", self.table, self.row_id, self.name] {
            aad.extend_from_slice(part.as_bytes());
            aad.push(0);
        }
        aad
    }
}

/// A secret as stored: never the plaintext.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// Ciphertext followed by the 16-byte GCM tag.
    pub ciphertext: Vec<u8>,
    /// The 96-bit nonce (the seed's `iv`).
    pub nonce: Vec<u8>,
    /// The algorithm name (the seed's `alg`), [`ALGORITHM`].
    pub alg: String,
    /// The id of the key that sealed it.
    pub key_id: String,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("alg", &self.alg)
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// Why a sealed secret could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// The key that sealed it is neither current nor previous.
    #[error("the secret was encrypted with key {0}, which is not configured: add that key to OPENCLAW_ENCRYPTION_KEY_PREVIOUS")]
    UnknownKey(String),
    /// An algorithm this build does not know.
    #[error("the secret uses algorithm '{0}', which this build cannot decrypt")]
    UnsupportedAlgorithm(String),
    /// The stored nonce is not 96 bits.
    #[error("the secret's nonce is malformed")]
    MalformedNonce,
    /// Authentication failed: tampered, or moved to another row or name.
    #[error("the secret failed authentication: it was altered, or it belongs to another row or secret name")]
    Authentication,
    /// The plaintext is not UTF-8 (cannot happen for what clawplane seals).
    #[error("the decrypted secret is not text")]
    NotText,
}

impl KeyRing {
    /// Seals `plaintext` under the current key with a fresh random nonce.
    pub fn seal(&self, context: SecretContext<'_>, plaintext: &SecretString) -> SealedSecret {
        let key = self.current();
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.bytes()));
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = context.associated_data();
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.expose_secret().as_bytes(),
                    aad: &aad,
                },
            )
            // AES-GCM encryption fails only for plaintexts over 64 GiB.
            .unwrap_or_default();
        SealedSecret {
            ciphertext,
            nonce: nonce.to_vec(),
            alg: ALGORITHM.to_owned(),
            key_id: key.id().as_str().to_owned(),
        }
    }

    /// Opens a sealed secret with whichever configured key sealed it.
    pub fn open(
        &self,
        context: SecretContext<'_>,
        sealed: &SealedSecret,
    ) -> Result<SecretString, DecryptError> {
        if sealed.alg != ALGORITHM {
            return Err(DecryptError::UnsupportedAlgorithm(sealed.alg.clone()));
        }
        let key = self
            .find(&KeyId::from_stored(sealed.key_id.clone()))
            .ok_or_else(|| DecryptError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.nonce.len() != NONCE_LEN {
            return Err(DecryptError::MalformedNonce);
        }
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.bytes()));
        let aad = context.associated_data();
        let plaintext = Zeroizing::new(
            cipher
                .decrypt(
                    Nonce::from_slice(&sealed.nonce),
                    Payload {
                        msg: &sealed.ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| DecryptError::Authentication)?,
        );
        let text = std::str::from_utf8(&plaintext).map_err(|_| DecryptError::NotText)?;
        Ok(SecretString::from(text.to_owned()))
    }

    /// Whether a sealed secret needs re-encryption under the current key.
    pub fn is_stale(&self, sealed: &SealedSecret) -> bool {
        sealed.key_id != self.current().id().as_str() || sealed.alg != ALGORITHM
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EncryptionKey;

    fn ctx<'a>(row: &'a str, name: &'a str) -> SecretContext<'a> {
        SecretContext {
            table: "openclaw_instances",
            row_id: row,
            name,
        }
    }

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[test]
    fn round_trip() {
        let ring = KeyRing::new(EncryptionKey::generate());
        let sealed = ring.seal(ctx("row-1", "service_token"), &secret("s3cr3t"));
        assert_eq!(sealed.alg, "aes-256-gcm");
        assert_eq!(sealed.nonce.len(), 12);
        assert_eq!(
            sealed.ciphertext.len(),
            6 + 16,
            "ciphertext carries its tag"
        );
        assert_eq!(sealed.key_id, ring.current().id().as_str());
        let opened = ring.open(ctx("row-1", "service_token"), &sealed).unwrap();
        assert_eq!(opened.expose_secret(), "s3cr3t");
    }

    #[test]
    fn every_encryption_uses_a_fresh_nonce() {
        let ring = KeyRing::new(EncryptionKey::generate());
        let a = ring.seal(ctx("r", "n"), &secret("same"));
        let b = ring.seal(ctx("r", "n"), &secret("same"));
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn the_wrong_key_cannot_open_it() {
        let ring = KeyRing::new(EncryptionKey::generate());
        let sealed = ring.seal(ctx("r", "n"), &secret("x"));
        let other = KeyRing::new(EncryptionKey::generate());
        assert_eq!(
            other.open(ctx("r", "n"), &sealed).unwrap_err(),
            DecryptError::UnknownKey(sealed.key_id.clone())
        );
        // Even a ring that claims the id but holds other bytes fails to authenticate.
        let mut forged = sealed.clone();
        forged.key_id = other.current().id().as_str().to_owned();
        assert_eq!(
            other.open(ctx("r", "n"), &forged).unwrap_err(),
            DecryptError::Authentication
        );
    }

    #[test]
    fn tampering_with_ciphertext_nonce_or_tag_is_detected() {
        let ring = KeyRing::new(EncryptionKey::generate());
        let sealed = ring.seal(ctx("r", "n"), &secret("payload"));
        let len = sealed.ciphertext.len();
        let mut body = sealed.clone();
        body.ciphertext[0] ^= 1;
        let mut tag = sealed.clone();
        tag.ciphertext[len - 1] ^= 0x80;
        let mut nonce = sealed.clone();
        nonce.nonce[11] ^= 1;
        let mut truncated = sealed.clone();
        truncated.ciphertext.truncate(len - 1);
        for bad in [body, tag, nonce, truncated] {
            assert_eq!(
                ring.open(ctx("r", "n"), &bad).unwrap_err(),
                DecryptError::Authentication
            );
        }
        let mut short_nonce = sealed.clone();
        short_nonce.nonce.pop();
        assert_eq!(
            ring.open(ctx("r", "n"), &short_nonce).unwrap_err(),
            DecryptError::MalformedNonce
        );
        let mut alg = sealed;
        alg.alg = "rot13".into();
        assert!(matches!(
            ring.open(ctx("r", "n"), &alg).unwrap_err(),
            DecryptError::UnsupportedAlgorithm(_)
        ));
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_or_name_fails_clearly() {
        let ring = KeyRing::new(EncryptionKey::generate());
        let sealed = ring.seal(ctx("row-a", "service_token"), &secret("tok"));
        let moved_row = ring
            .open(ctx("row-b", "service_token"), &sealed)
            .unwrap_err();
        let moved_name = ring
            .open(ctx("row-a", "gateway_token"), &sealed)
            .unwrap_err();
        let moved_table = ring
            .open(
                SecretContext {
                    table: "users",
                    row_id: "row-a",
                    name: "service_token",
                },
                &sealed,
            )
            .unwrap_err();
        for err in [moved_row, moved_name, moved_table] {
            assert_eq!(err, DecryptError::Authentication);
            assert!(err
                .to_string()
                .contains("belongs to another row or secret name"));
        }
    }

    #[test]
    fn rotation_decrypts_with_the_old_key_then_reencrypts_under_the_new() {
        let old = EncryptionKey::generate();
        let new = EncryptionKey::generate();
        let before = KeyRing::new(old.clone());
        let sealed = before.seal(ctx("r", "n"), &secret("keep me"));

        let rotated = KeyRing::new(new.clone()).with_previous([old]);
        assert!(rotated.is_stale(&sealed));
        let plain = rotated.open(ctx("r", "n"), &sealed).unwrap();
        let resealed = rotated.seal(ctx("r", "n"), &plain);
        assert!(!rotated.is_stale(&resealed));
        assert_eq!(resealed.key_id, new.id().as_str());

        // Once the old key is dropped, only the re-encrypted secret opens.
        let only_new = KeyRing::new(new);
        assert!(matches!(
            only_new.open(ctx("r", "n"), &sealed),
            Err(DecryptError::UnknownKey(_))
        ));
        assert_eq!(
            only_new
                .open(ctx("r", "n"), &resealed)
                .unwrap()
                .expose_secret(),
            "keep me"
        );
    }

    #[test]
    fn debug_of_a_sealed_secret_shows_no_bytes() {
        let ring = KeyRing::new(EncryptionKey::generate());
        let sealed = ring.seal(ctx("r", "n"), &secret("p"));
        let debug = format!("{sealed:?}");
        assert!(
            debug.contains("aes-256-gcm") && !debug.contains("nonce:"),
            "{debug}"
        );
    }
}
