//! The CSRF token of the sign-in and sign-up forms, before a session exists:
//! made by the server, never taken from the client.
//!
//! The form carries the token and the `clawplane_csrf` cookie carries the
//! same token (double submit); on top of that the token must be one this
//! process issued and not expired. A token is
//! `<expiry>.<random>.<tag>`: the expiry (Unix seconds), 256 random bits
//! from the operating system's CSPRNG, and an AES-256-GCM authentication
//! tag over both (GMAC: an empty plaintext, the two as associated data,
//! `clawplane_secrets`' sealing) under a key made at start-up and kept only
//! in memory. Nothing is stored per token, so strangers asking for the
//! sign-in page cost no storage; a restart makes open sign-in forms ask
//! for a reload, which their error page says.

use chrono::{DateTime, Duration, Utc};
use clawplane_secrets::{
    generate_token, EncryptionKey, ExposeSecret, KeyRing, SealedSecret, SecretContext,
    SecretString, ALGORITHM,
};

/// How long a sign-in form's token is good for.
pub const LIFETIME: Duration = Duration::hours(2);
/// A token with less left than this is replaced when a form is shown, so
/// a form shown again after a failed attempt can still be sent.
const RENEW_BEFORE: Duration = Duration::minutes(30);
/// The AES-GCM nonce and tag lengths.
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Longest token accepted for checking (longer input is refused unread).
const MAX_LEN: usize = 160;

/// Issues and checks the pre-session tokens of one process.
pub struct PreSessionTokens {
    ring: KeyRing,
}

impl PreSessionTokens {
    /// A fresh key, for this process only.
    pub fn new() -> Self {
        PreSessionTokens {
            ring: KeyRing::new(EncryptionKey::generate()),
        }
    }

    /// A new token, good until `now + LIFETIME`.
    pub fn issue(&self, now: DateTime<Utc>) -> String {
        let signed = format!(
            "{}.{}",
            (now + LIFETIME).timestamp(),
            generate_token().expose_secret()
        );
        let sealed = self
            .ring
            .seal(context(&signed), &SecretString::from(String::new()));
        let mut tag = sealed.nonce;
        tag.extend_from_slice(&sealed.ciphertext);
        format!("{signed}.{}", to_hex(&tag))
    }

    /// When `token` expires, if this process issued it and it has not
    /// expired at `now`.
    pub fn expiry(&self, token: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if token.len() > MAX_LEN {
            return None;
        }
        let (signed, tag) = token.rsplit_once('.')?;
        let (expiry, random) = signed.split_once('.')?;
        let expiry = DateTime::from_timestamp(expiry.parse().ok()?, 0)?;
        let tag = from_hex(tag)?;
        if expiry <= now || random.is_empty() || tag.len() != NONCE_LEN + TAG_LEN {
            return None;
        }
        let sealed = SealedSecret {
            nonce: tag[..NONCE_LEN].to_vec(),
            ciphertext: tag[NONCE_LEN..].to_vec(),
            alg: ALGORITHM.to_owned(),
            key_id: self.ring.current().id().as_str().to_owned(),
        };
        // GCM checks the tag in constant time.
        self.ring.open(context(signed), &sealed).ok()?;
        Some(expiry)
    }

    /// Whether `token` is good, with enough time left to be shown in a form.
    pub fn fresh_enough(&self, token: &str, now: DateTime<Utc>) -> bool {
        self.expiry(token, now)
            .is_some_and(|expiry| expiry - now > RENEW_BEFORE)
    }
}

impl Default for PreSessionTokens {
    fn default() -> Self {
        Self::new()
    }
}

/// What the tag covers: the expiry and the random part.
fn context(signed: &str) -> SecretContext<'_> {
    SecretContext {
        table: "console",
        row_id: signed,
        name: "pre-session-csrf",
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_is_good_until_it_expires() {
        let tokens = PreSessionTokens::new();
        let now = Utc::now();
        let token = tokens.issue(now);
        assert!(token.len() <= MAX_LEN, "{}", token.len());
        assert_eq!(
            tokens.expiry(&token, now).map(|e| e.timestamp()),
            Some((now + LIFETIME).timestamp())
        );
        assert!(tokens.fresh_enough(&token, now));
        let late = now + LIFETIME - Duration::minutes(5);
        assert!(tokens.expiry(&token, late).is_some(), "still good");
        assert!(!tokens.fresh_enough(&token, late), "but renewed in a form");
        assert_eq!(tokens.expiry(&token, now + LIFETIME), None, "expired");
    }

    #[test]
    fn an_expired_token_is_refused() {
        let tokens = PreSessionTokens::new();
        let now = Utc::now();
        let issued_long_ago = tokens.issue(now - LIFETIME - Duration::seconds(1));
        assert_eq!(tokens.expiry(&issued_long_ago, now), None);
    }

    #[test]
    fn tokens_the_server_did_not_issue_are_refused() {
        let tokens = PreSessionTokens::new();
        let now = Utc::now();
        let token = tokens.issue(now);
        let (signed, tag) = token.rsplit_once('.').unwrap();
        let (expiry, random) = signed.split_once('.').unwrap();
        let later: i64 = expiry.parse::<i64>().unwrap() + 86_400;
        let mut flipped = tag.to_owned().into_bytes();
        flipped[30] = if flipped[30] == b'0' { b'1' } else { b'0' };
        for forged in [
            "a".to_owned(),
            String::new(),
            "0".repeat(64),
            format!("{later}.{random}.{tag}"),
            format!("{expiry}.{}.{tag}", generate_token().expose_secret()),
            format!("{signed}.{}", String::from_utf8(flipped).unwrap()),
            format!("{signed}.{}", &tag[..tag.len() - 2]),
            format!("{signed}.{tag}00"),
            format!("{signed}.zz{}", &tag[2..]),
            format!("{signed}."),
            format!("{expiry}..{tag}"),
        ] {
            assert_eq!(tokens.expiry(&forged, now), None, "{forged}");
        }
        let other_process = PreSessionTokens::new();
        assert_eq!(other_process.expiry(&token, now), None, "another key");
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(to_hex(&[0, 15, 255]), "000fff");
        assert_eq!(from_hex("000fff"), Some(vec![0, 15, 255]));
        assert_eq!(from_hex("000FFF"), Some(vec![0, 15, 255]));
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("+1"), None);
        assert_eq!(from_hex("é1"), None);
    }
}
