//! The models file as written: serde shapes that refuse unknown fields and
//! hold values not yet checked. [`super::Catalog::parse`] turns them into the
//! catalog's types or into sentences that say what is wrong.

use serde::de::IgnoredAny;
use serde::Deserialize;

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub default: Option<String>,
    #[serde(default)]
    pub providers: Vec<ProviderFile>,
}

/// One `[[providers]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProviderFile {
    pub id: Option<String>,
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub api_key_file: Option<String>,
    /// Named so that a key written into the file is refused with a sentence
    /// rather than "unknown field"; its value is never kept.
    pub api_key: Option<IgnoredAny>,
    #[serde(default)]
    pub models: Vec<ModelFile>,
}

/// One `[[providers.models]]` table. Integers are read as `i64` so that a
/// negative price gets its own sentence instead of a type error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ModelFile {
    pub id: Option<String>,
    pub upstream: Option<String>,
    pub input_per_million: Option<i64>,
    pub output_per_million: Option<i64>,
    pub cached_per_million: Option<i64>,
    pub max_output_tokens: Option<i64>,
    pub context_window: Option<i64>,
}
