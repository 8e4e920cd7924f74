//! Where a provider's key comes from: an environment variable (looked up
//! through the caller's function) or a file (bounded, trimmed, one word).
//! Messages name the variable or the file, never the value.

use std::io::Read;
use std::path::Path;

use clawplane_secrets::SecretString;

use super::MAX_NAME_LEN;

/// Largest key file read, in bytes: anything longer is not a key.
const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;

pub(super) fn key_from_env(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SecretString, String> {
    let is_name = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !is_name {
        // The value is not echoed: it may be the key itself, put in the wrong field.
        return Err("api_key_env must be the name of an environment variable (letters, digits and _), not the key".into());
    }
    match env(name) {
        None => Err(format!("the environment variable {name} (api_key_env) is not set: set it to the provider's key")),
        Some(value) if value.trim().is_empty() => Err(format!("the environment variable {name} (api_key_env) is empty")),
        Some(value) => Ok(SecretString::from(value.trim().to_string())),
    }
}

pub(super) fn key_from_file(path: &Path) -> Result<SecretString, String> {
    let shown = path.display();
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read the key file {shown} (api_key_file): {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the key file {shown} (api_key_file): {e}"))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(format!("the key file {shown} is longer than {MAX_KEY_FILE_BYTES} bytes: it should hold only the key"));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| format!("the key file {shown} is not UTF-8 text"))?;
    let key = text.trim();
    if key.is_empty() {
        return Err(format!(
            "the key file {shown} is empty: write the provider's key into it"
        ));
    }
    if key.contains(char::is_whitespace) {
        return Err(format!(
            "the key file {shown} holds more than one word: it should hold only the key"
        ));
    }
    Ok(SecretString::from(key.to_string()))
}
