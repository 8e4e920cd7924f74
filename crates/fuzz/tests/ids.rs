//! Ids and names a stranger sends: user ids (`X-OA-User-Id`, bodies),
//! instance ids (paths), runtime names (the ingress host, sanitised
//! free text), idempotency keys (a header), secret and provider-key names,
//! token names and sign-up emails.
//!
//! For each: nothing panics; what is accepted satisfies the invariants the
//! type documents (length, characters, trimming) and parses again to
//! itself; what is refused breaks one of them.

use bolero::check;
use clawplane_domain::provider_key::{
    is_reserved, MAX_PROVIDER_KEY_NAME_LEN, RESERVED_PROVIDER_KEY_NAMES,
    RESERVED_PROVIDER_KEY_PREFIXES,
};
use clawplane_domain::{
    Email, IdError, IdempotencyKey, IdempotencyKeyError, InstanceId, ProviderKeyName,
    ProviderKeyNameError, RuntimeName, SecretName, TokenName, UserId,
};
use clawplane_fuzz::text::text;

const ITERATIONS: usize = 20_000;

/// Characters and pieces near the edges of every id rule.
const DICTIONARY: &[&str] = &[
    "a",
    "z",
    "A",
    "Z",
    "0",
    "9",
    "-",
    "_",
    ".",
    "@",
    " ",
    "\t",
    "\n",
    "\u{0}",
    "\u{7f}",
    "\u{85}",
    "\u{a0}",
    "\u{3000}",
    "é",
    "É",
    "\u{212a}",
    "İ",
    "ß",
    "\u{1F600}",
    "/",
    "..",
    "NODE_",
    "LD_",
    "OPENCLAW_",
    "PATH",
    "HOME",
    "_KEY",
    "service_token",
    "GATEWAY_TOKEN",
    "provider_keys",
    "clawplane:",
    "oc-",
    "--",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

fn input(bytes: &[u8]) -> String {
    text(bytes, DICTIONARY)
}

#[test]
fn user_ids_are_trimmed_printable_and_bounded() {
    check!()
        .with_iterations(ITERATIONS)
        .with_max_len(300)
        .for_each(|bytes| {
            let raw = input(bytes);
            match UserId::parse(&raw) {
                Ok(id) => {
                    let s = id.as_str();
                    assert_eq!(s, raw.trim());
                    assert!(!s.is_empty() && s.len() <= 256, "{raw:?}");
                    assert!(!s.chars().any(char::is_control), "{raw:?}");
                    assert_eq!(UserId::parse(s).as_ref(), Ok(&id));
                    let json = serde_json::to_value(&id).unwrap();
                    assert_eq!(serde_json::from_value::<UserId>(json).ok(), Some(id));
                }
                Err(IdError::MissingUserId) => assert!(raw.trim().is_empty(), "{raw:?}"),
                Err(_) => {
                    let t = raw.trim();
                    assert!(t.len() > 256 || t.chars().any(char::is_control), "{raw:?}");
                }
            }
        });
}

#[test]
fn instance_ids_are_uuids_in_one_canonical_form() {
    check!()
        .with_iterations(ITERATIONS)
        .with_max_len(64)
        .for_each(|bytes| {
            let raw = input(bytes);
            if let Ok(id) = InstanceId::parse(&raw) {
                let shown = id.to_string();
                assert_eq!(shown.len(), 36, "{raw:?}");
                assert!(shown.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
                assert_eq!(shown, shown.to_ascii_lowercase());
                assert_eq!(InstanceId::parse(&shown), Ok(id));
            }
        });
}

#[test]
fn every_instance_id_parses_back_from_its_display_form() {
    check!()
        .with_type::<u128>()
        .with_iterations(ITERATIONS)
        .for_each(|n| {
            let id = InstanceId::from_uuid(uuid::Uuid::from_u128(*n));
            assert_eq!(InstanceId::parse(&id.to_string()), Ok(id));
            assert_eq!(InstanceId::parse(&id.to_string().to_uppercase()), Ok(id));
        });
}

/// The DNS-label rule, stated independently of the parser.
fn is_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
}

#[test]
fn runtime_names_are_dns_labels_and_sanitize_makes_one() {
    check!()
        .with_iterations(ITERATIONS)
        .with_max_len(100)
        .for_each(|bytes| {
            let raw = input(bytes);
            match RuntimeName::parse(&raw) {
                Ok(name) => {
                    assert!(is_label(name.as_str()), "{raw:?}");
                    assert_eq!(name.as_str(), raw, "parse is exact");
                }
                Err(_) => assert!(!is_label(&raw), "{raw:?} refused"),
            }
            let keeps_something = raw
                .chars()
                .flat_map(char::to_lowercase)
                .any(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            match RuntimeName::sanitize(&raw) {
                Some(name) => {
                    let s = name.as_str();
                    assert!(is_label(s), "{raw:?} -> {s:?}");
                    assert!(!s.contains("--"), "{raw:?} -> {s:?}");
                    assert_eq!(RuntimeName::sanitize(s).as_ref(), Some(&name), "idempotent");
                    assert_eq!(RuntimeName::parse(s).as_ref(), Ok(&name));
                }
                None => assert!(!keeps_something, "{raw:?} sanitised to nothing"),
            }
            if is_label(&raw) && !raw.contains("--") {
                let kept = RuntimeName::sanitize(&raw);
                assert_eq!(kept.as_ref().map(RuntimeName::as_str), Some(raw.as_str()));
            }
        });
}

#[test]
fn idempotency_keys_are_trimmed_printable_ascii_of_at_most_200() {
    check!()
        .with_iterations(ITERATIONS)
        .with_max_len(260)
        .for_each(|bytes| {
            let raw = input(bytes);
            match IdempotencyKey::parse(&raw) {
                Ok(key) => {
                    let s = key.as_str();
                    assert_eq!(s, raw.trim());
                    assert!((1..=IdempotencyKey::MAX_LEN).contains(&s.len()), "{raw:?}");
                    assert!(s.bytes().all(|b| b == b' ' || b.is_ascii_graphic()));
                    assert_eq!(IdempotencyKey::parse(s).as_ref(), Ok(&key));
                    assert_eq!(key.is_internal(), s.starts_with("clawplane:"));
                }
                Err(IdempotencyKeyError::Missing) => assert!(raw.trim().is_empty()),
                Err(IdempotencyKeyError::Invalid) => {
                    let t = raw.trim();
                    let printable = t.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
                    assert!(t.len() > IdempotencyKey::MAX_LEN || !printable, "{raw:?}");
                }
            }
        });
}

#[test]
fn secret_names_are_the_three_names_in_any_case() {
    check!()
        .with_iterations(ITERATIONS)
        .with_max_len(40)
        .for_each(|bytes| {
            let raw = input(bytes);
            match SecretName::parse(&raw) {
                Some(name) => {
                    assert_eq!(raw.trim().to_ascii_lowercase(), name.as_str());
                    assert_eq!(SecretName::parse(name.as_str()), Some(name));
                }
                None => assert!(
                    !SecretName::ALL
                        .iter()
                        .any(|n| raw.trim().eq_ignore_ascii_case(n.as_str())),
                    "{raw:?}"
                ),
            }
        });
}

#[test]
fn provider_key_names_are_env_names_and_never_reserved() {
    check!()
        .with_iterations(ITERATIONS)
        .with_max_len(80)
        .for_each(|bytes| {
            let raw = input(bytes);
            let well_formed = (1..=MAX_PROVIDER_KEY_NAME_LEN).contains(&raw.len())
                && raw.as_bytes()[0].is_ascii_uppercase()
                && raw
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            let reserved = RESERVED_PROVIDER_KEY_NAMES.contains(&raw.as_str())
                || RESERVED_PROVIDER_KEY_PREFIXES
                    .iter()
                    .any(|p| raw.starts_with(p));
            match ProviderKeyName::parse(&raw) {
                Ok(name) => {
                    assert!(well_formed && !reserved, "{raw:?} accepted");
                    assert!(!is_reserved(name.as_str()));
                    assert_eq!(name.as_str(), raw, "parse is exact");
                    assert_eq!(ProviderKeyName::parse(name.as_str()).as_ref(), Ok(&name));
                }
                Err(ProviderKeyNameError::Reserved(named)) => {
                    assert!(well_formed && reserved, "{raw:?} called reserved");
                    assert_eq!(named, raw);
                    let message = ProviderKeyNameError::Reserved(named).to_string();
                    assert!(message.starts_with(&raw), "{message}");
                }
                Err(ProviderKeyNameError::Invalid) => assert!(!well_formed, "{raw:?} invalid"),
            }
        });
}

#[test]
fn token_names_and_emails_are_trimmed_bounded_and_stable() {
    check!()
        .with_iterations(ITERATIONS)
        .with_max_len(300)
        .for_each(|bytes| {
            let raw = input(bytes);
            if let Ok(name) = TokenName::parse(&raw) {
                let s = name.as_str();
                assert_eq!(s, raw.trim());
                assert!(s.chars().count() >= 1 && !s.chars().any(char::is_control));
                assert_eq!(
                    TokenName::parse(s).map(|n| n.as_str().to_owned()),
                    Ok(s.to_owned())
                );
            }
            if let Ok(email) = Email::parse(&raw) {
                let s = email.as_str();
                assert!(s.len() <= 254, "{raw:?}");
                assert!(!s.chars().any(|c| c.is_whitespace() || c.is_control()));
                assert_eq!(s.matches('@').count(), 1, "{raw:?}");
                let (local, domain) = s.split_once('@').unwrap();
                assert!(!local.is_empty() && !domain.is_empty());
                assert_eq!(Email::parse(s).as_ref(), Ok(&email), "{raw:?} is stable");
            }
        });
}
