//! Random tokens and constant-time comparison.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A new 256-bit token from the operating system's CSPRNG, as 43 URL-safe
/// base64 characters.
pub fn generate_token() -> SecretString {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

/// Compares two secrets in constant time. Both sides are hashed first, so the
/// time taken does not depend on where they differ nor on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let ha = Sha256::digest(a);
    let hb = Sha256::digest(b);
    ha.ct_eq(&hb).into()
}

/// Prefix of per-user API tokens, so a leaked one is recognisable.
pub const API_TOKEN_PREFIX: &str = "cpk_";

/// A new per-user API token (`cpk_` and 256 random bits) and the digest
/// that is all the store keeps of it.
pub fn generate_api_token() -> (SecretString, String) {
    let raw = generate_token();
    let token = SecretString::from(format!(
        "{API_TOKEN_PREFIX}{}",
        secrecy::ExposeSecret::expose_secret(&raw)
    ));
    let digest = api_token_digest(secrecy::ExposeSecret::expose_secret(&token));
    (token, digest)
}

/// The SHA-256 digest (hex) under which an API token is stored and looked
/// up. The token has 256 bits of entropy, so a fast digest is enough: there
/// is nothing to brute-force.
pub fn api_token_digest(token: &str) -> String {
    token_digest(token)
}

/// The SHA-256 digest (hex) of a 256-bit token (an API token, a model
/// token), under which it is looked up without being stored.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn tokens_are_256_bits_and_unique() {
        let a = generate_token();
        let b = generate_token();
        assert_eq!(a.expose_secret().len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose_secret()).unwrap().len(), 32);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(!format!("{a:?}").contains(a.expose_secret()));
    }

    #[test]
    fn api_tokens_are_prefixed_and_stored_as_digests() {
        let (token, digest) = generate_api_token();
        assert!(token.expose_secret().starts_with(API_TOKEN_PREFIX));
        assert_eq!(digest, api_token_digest(token.expose_secret()));
        assert_eq!(digest.len(), 64);
        assert!(!digest.contains(token.expose_secret()));
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"key", b"key"));
        assert!(!constant_time_eq(b"key", b"kez"));
        assert!(!constant_time_eq(b"key", b"key "));
        assert!(!constant_time_eq(b"", b"key"));
        assert!(constant_time_eq(b"", b""));
    }
}
