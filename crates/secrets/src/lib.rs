//! Secrets at rest and in memory.
//!
//! - [`key`]: the 32-byte encryption key, parsed from `OPENCLAW_ENCRYPTION_KEY`
//!   exactly as the seed did, its key id, and the key ring used for rotation;
//! - [`sealed`]: AES-256-GCM sealing with a fresh 96-bit nonce per encryption
//!   and the row identity and secret name bound as associated data;
//! - [`keyfile`]: the embedded default's generated key file (mode 0600);
//! - [`token`]: CSPRNG tokens and constant-time comparison.
//!
//! Secret values travel in [`secrecy::SecretString`], which zeroes its memory
//! on drop and prints `[REDACTED]` in `Debug`.

pub mod key;
pub mod keyfile;
pub mod sealed;
pub mod token;

pub use key::{EncryptionKey, KeyError, KeyId, KeyRing};
pub use keyfile::{KeyFileError, KeyFileOutcome};
pub use sealed::{DecryptError, SealedSecret, SecretContext, ALGORITHM};
pub use secrecy::{ExposeSecret, SecretString};
pub use token::{
    api_token_digest, constant_time_eq, generate_api_token, generate_token, token_digest,
    API_TOKEN_PREFIX,
};
