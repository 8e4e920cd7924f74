//! Encryption keys: parsing, key ids, and the ring of current and previous keys.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Why an encryption key was refused. Each variant says what to set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The variable is not set.
    #[error("{0} is not set: set it to 32 random bytes as 64 hex characters or base64 (for example `openssl rand -hex 32`)")]
    Unset(&'static str),
    /// The variable is set but blank.
    #[error("{0} is empty: set it to 32 random bytes as 64 hex characters or base64")]
    Empty(&'static str),
    /// The value is neither 64 hex characters nor base64.
    #[error("{0} is neither 64 hex characters nor valid base64")]
    Encoding(&'static str),
    /// The value decodes to the wrong number of bytes.
    #[error("{name} must decode to 32 bytes, but it decodes to {got}")]
    WrongLength {
        /// The variable's name.
        name: &'static str,
        /// How many bytes it decoded to.
        got: usize,
    },
}

/// A short, stable identifier of a key: the first 8 bytes of
/// SHA-256("clawplane-key-id\0" || key), as 16 hex characters. Stored beside
/// every ciphertext so decryption knows which key to use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// Wraps a key id read from storage.
    pub fn from_stored(id: impl Into<String>) -> Self {
        KeyId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 256-bit AES key. Zeroed on drop; `Debug` shows only the key id.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct EncryptionKey {
    bytes: [u8; 32],
    #[zeroize(skip)]
    id: KeyId,
}

impl EncryptionKey {
    /// Parses a key the way the seed did: trimmed; exactly 64 hex characters
    /// are hex, anything else is base64 (standard or URL-safe, padding
    /// optional); the result must be 32 bytes. `name` is the variable's name,
    /// used in the error message.
    pub fn parse(name: &'static str, raw: Option<&str>) -> Result<Self, KeyError> {
        let raw = raw.ok_or(KeyError::Unset(name))?;
        let text = raw.trim();
        if text.is_empty() {
            return Err(KeyError::Empty(name));
        }
        let decoded: Zeroizing<Vec<u8>> =
            if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                Zeroizing::new(hex::decode(text).map_err(|_| KeyError::Encoding(name))?)
            } else {
                Zeroizing::new(decode_base64(text).ok_or(KeyError::Encoding(name))?)
            };
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::WrongLength {
                name,
                got: decoded.len(),
            })?;
        Ok(Self::from_bytes(bytes))
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"clawplane-key-id\0");
        hasher.update(bytes);
        let id = KeyId(hex::encode(&hasher.finalize()[..8]));
        EncryptionKey { bytes, id }
    }

    /// A new random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let key = Self::from_bytes(bytes);
        bytes.zeroize();
        key
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The key as 64 hex characters, for writing the key file.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.bytes))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKey({})", self.id)
    }
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .into_iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// The current key, used for every encryption, and previous keys, used only
/// to decrypt what was written before a rotation.
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: EncryptionKey,
    previous: Vec<EncryptionKey>,
}

impl KeyRing {
    /// A ring with one key.
    pub fn new(current: EncryptionKey) -> Self {
        KeyRing {
            current,
            previous: Vec::new(),
        }
    }

    /// Adds decrypt-only keys. A previous key equal to the current one is ignored.
    pub fn with_previous(mut self, previous: impl IntoIterator<Item = EncryptionKey>) -> Self {
        for key in previous {
            if key.id != self.current.id && !self.previous.iter().any(|k| k.id == key.id) {
                self.previous.push(key);
            }
        }
        self
    }

    /// Parses a comma-separated list of previous keys (each hex or base64).
    pub fn parse_previous(
        name: &'static str,
        raw: Option<&str>,
    ) -> Result<Vec<EncryptionKey>, KeyError> {
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| EncryptionKey::parse(name, Some(s)))
            .collect()
    }

    /// The key every new encryption uses.
    pub fn current(&self) -> &EncryptionKey {
        &self.current
    }

    /// The key with this id, current or previous.
    pub fn find(&self, id: &KeyId) -> Option<&EncryptionKey> {
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| &k.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "OPENCLAW_ENCRYPTION_KEY";

    #[test]
    fn sixty_four_hex_characters_are_hex() {
        let hex_key = "00".repeat(31) + "ff";
        let key = EncryptionKey::parse(NAME, Some(&format!("  {hex_key}\n"))).unwrap();
        assert_eq!(key.bytes()[31], 0xff);
        assert_eq!(key.to_hex().as_str(), hex_key);
    }

    #[test]
    fn anything_else_is_base64() {
        let bytes = [7u8; 32];
        for text in [
            STANDARD.encode(bytes),
            STANDARD_NO_PAD.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
        ] {
            let key = EncryptionKey::parse(NAME, Some(&text)).unwrap();
            assert_eq!(key.bytes(), &bytes);
        }
    }

    #[test]
    fn unset_empty_and_wrong_length_are_distinct_errors() {
        assert_eq!(
            EncryptionKey::parse(NAME, None).unwrap_err(),
            KeyError::Unset(NAME)
        );
        assert_eq!(
            EncryptionKey::parse(NAME, Some(" \n")).unwrap_err(),
            KeyError::Empty(NAME)
        );
        assert_eq!(
            EncryptionKey::parse(NAME, Some(&STANDARD.encode([1u8; 16]))).unwrap_err(),
            KeyError::WrongLength {
                name: NAME,
                got: 16
            }
        );
        // 60 hex characters are not "exactly 64", so they are read as base64.
        assert_eq!(
            EncryptionKey::parse(NAME, Some(&"abcd".repeat(15))).unwrap_err(),
            KeyError::WrongLength {
                name: NAME,
                got: 45
            }
        );
        assert_eq!(
            EncryptionKey::parse(NAME, Some("not base64 at all!")).unwrap_err(),
            KeyError::Encoding(NAME)
        );
        let message = KeyError::Unset(NAME).to_string();
        assert!(
            message.contains("OPENCLAW_ENCRYPTION_KEY is not set"),
            "{message}"
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = EncryptionKey::from_bytes([0xab; 32]);
        let debug = format!("{key:?} {:?}", KeyRing::new(key.clone()));
        assert!(!debug.to_lowercase().contains("abab"), "{debug}");
        assert!(debug.contains(key.id().as_str()));
    }

    #[test]
    fn key_ids_are_stable_and_distinct() {
        let a = EncryptionKey::from_bytes([1; 32]);
        let b = EncryptionKey::from_bytes([2; 32]);
        assert_eq!(a.id(), EncryptionKey::from_bytes([1; 32]).id());
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().as_str().len(), 16);
    }

    #[test]
    fn the_ring_finds_current_and_previous_keys_only() {
        let old = EncryptionKey::generate();
        let new = EncryptionKey::generate();
        let stranger = EncryptionKey::generate();
        let ring = KeyRing::new(new.clone()).with_previous([old.clone(), new.clone()]);
        assert_eq!(ring.current().id(), new.id());
        assert!(ring.find(old.id()).is_some());
        assert!(ring.find(stranger.id()).is_none());
    }

    #[test]
    fn previous_keys_parse_from_a_comma_separated_list() {
        let a = EncryptionKey::generate();
        let b = EncryptionKey::generate();
        let list = format!("{}, {} ,", a.to_hex().as_str(), b.to_hex().as_str());
        let keys = KeyRing::parse_previous("PREV", Some(&list)).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].id(), b.id());
        assert!(KeyRing::parse_previous("PREV", None).unwrap().is_empty());
        assert!(KeyRing::parse_previous("PREV", Some("short")).is_err());
    }
}
