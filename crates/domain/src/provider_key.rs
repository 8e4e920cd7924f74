//! Provider-key names: the environment variables a user may hand their
//! gateway (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`...).
//!
//! One rule for both sides: `serve` refuses a name here when the key is
//! stored, and the runtime applies the same rule when it reads
//! `OPENCLAW_PROVIDER_KEYS` at start, so a name `serve` accepted can never
//! stop a gateway from starting. The gateway's environment is built from
//! scratch by the runtime; a provider key is added last, so a name the
//! runtime sets itself, or one that changes how the loader, Node, the shell
//! or the network behave, would override the runtime's choices. Those names
//! are reserved.

use std::fmt;

/// Longest name accepted, in bytes (names are ASCII).
pub const MAX_PROVIDER_KEY_NAME_LEN: usize = 64;

/// Names no provider key may have: what the runtime sets for the gateway
/// (`PATH`, `HOME`, `LANG`), the process's identity and shell start-up,
/// the proxies and certificate stores the network stack reads, and the C
/// library's own switches.
pub const RESERVED_PROVIDER_KEY_NAMES: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "USER",
    "LOGNAME",
    "SHELL",
    "PWD",
    "TMPDIR",
    "TERM",
    "ENV",
    "BASH_ENV",
    "IFS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GLIBC_TUNABLES",
    "GCONV_PATH",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RES_OPTIONS",
];

/// Prefixes no provider key may start with: the gateway's own settings
/// (`OPENCLAW_`), clawplane's (`CLAWPLANE_`, `OPENAGENTS_`), Node's and
/// npm's (`NODE_OPTIONS`, `NODE_PATH`, `NODE_TLS_REJECT_UNAUTHORIZED`...),
/// libuv's, the dynamic loader's (`LD_PRELOAD`, `LD_LIBRARY_PATH`...), the
/// locale's and the XDG directories.
pub const RESERVED_PROVIDER_KEY_PREFIXES: &[&str] = &[
    "OPENCLAW_",
    "CLAWPLANE_",
    "OPENAGENTS_",
    "NODE_",
    "NPM_CONFIG_",
    "UV_",
    "LD_",
    "LC_",
    "XDG_",
];

/// An environment variable name a provider key may have: 1-64 characters
/// of `A-Z`, `0-9` and `_`, starting with a letter, and not reserved.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProviderKeyName(String);

/// Why a provider-key name was refused. The messages name no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderKeyNameError {
    /// Not an environment variable name of the accepted form.
    Invalid,
    /// A reserved name (it is carried: names are not secret).
    Reserved(String),
}

impl ProviderKeyName {
    /// Parses a name from untrusted input (exact: nothing is trimmed, so
    /// what is stored is what the gateway gets).
    pub fn parse(input: &str) -> Result<Self, ProviderKeyNameError> {
        let well_formed = (1..=MAX_PROVIDER_KEY_NAME_LEN).contains(&input.len())
            && input.starts_with(|c: char| c.is_ascii_uppercase())
            && input
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !well_formed {
            return Err(ProviderKeyNameError::Invalid);
        }
        if is_reserved(input) {
            return Err(ProviderKeyNameError::Reserved(input.to_owned()));
        }
        Ok(ProviderKeyName(input.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Whether `name` is one of [`RESERVED_PROVIDER_KEY_NAMES`] or starts with
/// one of [`RESERVED_PROVIDER_KEY_PREFIXES`].
pub fn is_reserved(name: &str) -> bool {
    RESERVED_PROVIDER_KEY_NAMES.contains(&name)
        || RESERVED_PROVIDER_KEY_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

impl fmt::Display for ProviderKeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ProviderKeyNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderKeyNameError::Invalid => f.write_str(
                "provider key names are environment variable names such as OPENAI_API_KEY \
                 (A-Z, 0-9 and _, starting with a letter, at most 64 characters)",
            ),
            ProviderKeyNameError::Reserved(name) => write!(
                f,
                "{name} is reserved and cannot be a provider key: the reserved names are {}, \
                 and any name starting with {}",
                RESERVED_PROVIDER_KEY_NAMES.join(", "),
                RESERVED_PROVIDER_KEY_PREFIXES.join(", "),
            ),
        }
    }
}

impl std::error::Error for ProviderKeyNameError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_are_accepted_as_given() {
        for name in [
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "A",
            "X1_2",
            &"K".repeat(64),
        ] {
            assert_eq!(ProviderKeyName::parse(name).unwrap().as_str(), name);
        }
        // Close to a reserved name is not reserved.
        for name in [
            "PATHS",
            "MY_PATH",
            "NODE",
            "NODEJS_KEY",
            "HOMEASSISTANT_TOKEN",
        ] {
            assert!(ProviderKeyName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn malformed_names_are_invalid() {
        for name in [
            "",
            "openai_api_key",
            "1OPENAI",
            "_OPENAI",
            "OPENAI-KEY",
            "OPENAI KEY",
            " OPENAI_API_KEY",
            "OPENAI_API_KEY\n",
            "ÉCOLE",
            &"K".repeat(65),
        ] {
            assert_eq!(
                ProviderKeyName::parse(name),
                Err(ProviderKeyNameError::Invalid),
                "{name:?}"
            );
        }
    }

    #[test]
    fn reserved_names_and_prefixes_are_refused() {
        for name in [
            "NODE_OPTIONS",
            "NODE_PATH",
            "NODE_TLS_REJECT_UNAUTHORIZED",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "HTTPS_PROXY",
            "HTTP_PROXY",
            "PATH",
            "HOME",
            "LANG",
            "OPENCLAW_STATE_DIR",
            "OPENCLAW_GATEWAY_TOKEN",
            "OPENAGENTS_SERVICE_TOKEN",
        ] {
            assert_eq!(
                ProviderKeyName::parse(name),
                Err(ProviderKeyNameError::Reserved(name.to_owned())),
                "{name}"
            );
        }
        for name in RESERVED_PROVIDER_KEY_NAMES {
            assert!(ProviderKeyName::parse(name).is_err(), "{name}");
        }
        for prefix in RESERVED_PROVIDER_KEY_PREFIXES {
            let name = format!("{prefix}X");
            assert!(ProviderKeyName::parse(&name).is_err(), "{name}");
        }
    }

    #[test]
    fn the_refusal_lists_every_reserved_name_and_prefix() {
        let message = ProviderKeyNameError::Reserved("NODE_OPTIONS".into()).to_string();
        assert!(message.starts_with("NODE_OPTIONS is reserved"), "{message}");
        for name in RESERVED_PROVIDER_KEY_NAMES
            .iter()
            .chain(RESERVED_PROVIDER_KEY_PREFIXES)
        {
            assert!(message.contains(name), "{name} in {message}");
        }
    }
}
