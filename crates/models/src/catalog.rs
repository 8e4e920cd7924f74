//! The operator's models file: providers (an OpenAI-compatible base URL and
//! where its key comes from), their models with prices and limits, and the
//! default model. Loaded once at start and checked completely: every problem
//! found is named with where it is, and nothing of a key is ever echoed.
//!
//! The key is read from an environment variable (through the lookup the
//! caller passes: this crate never reads the process environment) or from a
//! file; a key written into the models file itself is refused, since whoever
//! can read that file (backups, a configuration repository) would hold it.

mod file;
mod key;

use std::fmt;
use std::path::{Path, PathBuf};

use clawplane_domain::MicroUsd;
use clawplane_secrets::SecretString;

use file::{File, ModelFile, ProviderFile};
use key::{key_from_env, key_from_file};

/// Largest price accepted, in micro-USD per million tokens ($1,000,000): a
/// bound that keeps every cost computation far inside an `i64`.
pub const MAX_PRICE_PER_MILLION: i64 = 1_000_000_000_000;
/// Largest token limit accepted (`max_output_tokens`, `context_window`).
pub const MAX_TOKEN_LIMIT: i64 = 100_000_000;
/// Longest id or upstream model name.
const MAX_NAME_LEN: usize = 128;

/// A model's prices, in micro-USD per million tokens (all greater than zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prices {
    /// Per million prompt tokens not served from the provider's cache.
    pub input_per_million: MicroUsd,
    /// Per million completion tokens (reasoning tokens included, as the
    /// provider counts them).
    pub output_per_million: MicroUsd,
    /// Per million prompt tokens the provider served from its cache.
    pub cached_per_million: MicroUsd,
}

/// A model the gateway may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// The id clients send as `model` (unique in the catalog).
    pub id: String,
    /// The provider's own name for it, sent upstream.
    pub upstream: String,
    /// The id of the provider that serves it.
    pub provider: String,
    /// Its prices.
    pub prices: Prices,
    /// The most completion tokens one request may ask for (and the
    /// default when it asks for none), in `1..=context_window`.
    pub max_output_tokens: u32,
    /// The most prompt tokens the model reads.
    pub context_window: u32,
}

/// An OpenAI-compatible provider. `Debug` shows no key.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Its id in the models file (unique).
    pub id: String,
    /// `http(s)://host[:port][/path]` without a trailing slash; requests go
    /// to `base_url + "/chat/completions"`.
    pub base_url: String,
    /// The operator's key, sent as `Authorization: Bearer`.
    pub api_key: SecretString,
}

impl Provider {
    /// The chat completions endpoint.
    pub fn chat_completions_url(&self) -> String {
        format!("{}/chat/completions", self.base_url)
    }
}

/// The checked models file.
#[derive(Debug, Clone)]
pub struct Catalog {
    default: String,
    providers: Vec<Provider>,
    models: Vec<Model>,
}

/// Why a models file was refused. Messages name the file and the place in
/// it; none holds any part of a key.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file could not be read.
    #[error("cannot read the models file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, or not the shape of a models file (an unknown field, a
    /// wrong type).
    #[error("the models file {} is not valid at line {line}, column {column}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message, quoted values removed.
        message: String,
    },
    /// Well-formed, but wrong: every problem found, each a sentence that
    /// starts with where it is.
    #[error("the models file {} has {} problem(s): {}", path.display(), problems.len(), problems.join("; "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// One sentence per problem.
        problems: Vec<String>,
    },
}

impl Catalog {
    /// Reads and checks the models file at `path`. `env` looks up an
    /// environment variable (the CLI passes `std::env::var(..).ok()`); a
    /// relative `api_key_file` is read from the models file's directory.
    pub fn load(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Catalog, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Catalog::parse(&text, path, env)
    }

    /// Checks the text of a models file; `path` names it in messages and
    /// anchors relative key files.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Catalog, CatalogError> {
        let file: File = toml::from_str(text).map_err(|e| syntax_error(text, path, &e))?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        let mut providers = Vec::new();
        let mut models: Vec<Model> = Vec::new();
        // Every model id written, also of models refused, so that a default
        // naming a model with a problem is not reported a second time.
        let mut written: Vec<&str> = Vec::new();
        if file.providers.is_empty() {
            problems.push("no [[providers]]: list at least one provider with its models".into());
        }
        for (index, raw) in file.providers.iter().enumerate() {
            let at = match &raw.id {
                Some(id) => format!("providers[{index}] (id \"{}\")", shown(id)),
                None => format!("providers[{index}]"),
            };
            let provider = check_provider(raw, &at, base_dir, env, &mut problems);
            let provider_id = raw.id.clone().unwrap_or_default();
            if raw.models.is_empty() {
                problems.push(format!("{at}: no [[providers.models]]: list its models"));
            }
            for (m, raw_model) in raw.models.iter().enumerate() {
                written.extend(raw_model.id.as_deref());
                let model_at = match &raw_model.id {
                    Some(id) => format!("{at}, models[{m}] (id \"{}\")", shown(id)),
                    None => format!("{at}, models[{m}]"),
                };
                if let Some(model) = check_model(raw_model, &provider_id, &model_at, &mut problems)
                {
                    if models.iter().any(|known| known.id == model.id) {
                        problems.push(format!(
                            "{model_at}: the model id \"{}\" is used twice: model ids must be unique across providers",
                            model.id
                        ));
                    } else {
                        models.push(model);
                    }
                }
            }
            if let Some(provider) = provider {
                if providers.iter().any(|p: &Provider| p.id == provider.id) {
                    problems.push(format!(
                        "{at}: the provider id \"{}\" is used twice: provider ids must be unique",
                        provider.id
                    ));
                } else {
                    providers.push(provider);
                }
            }
        }
        let default = match file.default {
            None => {
                problems.push(
                    "default is missing: name the model id used when an agent has not chosen one"
                        .into(),
                );
                String::new()
            }
            Some(default) => {
                if !written.is_empty() && !written.contains(&default.as_str()) {
                    problems.push(format!(
                        "default = \"{}\" is not a model id in this file (known: {})",
                        shown(&default),
                        written
                            .iter()
                            .map(|id| shown(id).to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                default
            }
        };
        if !problems.is_empty() {
            return Err(CatalogError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        Ok(Catalog {
            default,
            providers,
            models,
        })
    }

    /// The default model.
    pub fn default_model(&self) -> &Model {
        // `parse` guarantees the default names a model; the first model is
        // a fallback that cannot be reached.
        self.model(&self.default).unwrap_or(&self.models[0])
    }

    /// The model with this id.
    pub fn model(&self, id: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.id == id)
    }

    /// Every model, in file order.
    pub fn models(&self) -> &[Model] {
        &self.models
    }

    /// Every provider, in file order.
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// The model with this id and the provider that serves it.
    pub fn route(&self, id: &str) -> Option<(&Model, &Provider)> {
        let model = self.model(id)?;
        let provider = self.providers.iter().find(|p| p.id == model.provider)?;
        Some((model, provider))
    }
}

fn check_provider(
    raw: &ProviderFile,
    at: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<Provider> {
    let before = problems.len();
    let id = check_name(raw.id.as_deref(), "id", at, problems);
    let base_url = match &raw.base_url {
        None => {
            problems.push(format!(
                "{at}: base_url is missing: give the provider's OpenAI-compatible API root, such as https://api.openai.com/v1"
            ));
            None
        }
        Some(url) => match check_base_url(url) {
            Ok(url) => Some(url),
            Err(why) => {
                problems.push(format!("{at}: base_url {why}"));
                None
            }
        },
    };
    let api_key = if raw.api_key.is_some() {
        problems.push(format!(
            "{at}: api_key is not allowed: a key in the models file is readable by anyone who can read the file; \
             remove it and set api_key_env = \"NAME\" (an environment variable) or api_key_file = \"/path/to/key\""
        ));
        None
    } else {
        match (&raw.api_key_env, &raw.api_key_file) {
            (Some(_), Some(_)) => {
                problems.push(format!(
                    "{at}: both api_key_env and api_key_file are set: keep one"
                ));
                None
            }
            (None, None) => {
                problems.push(format!(
                    "{at}: no key source: set api_key_env = \"NAME\" (an environment variable) or api_key_file = \"/path/to/key\""
                ));
                None
            }
            (Some(name), None) => key_from_env(name, env)
                .map_err(|why| problems.push(format!("{at}: {why}")))
                .ok(),
            (None, Some(file)) => key_from_file(&base_dir.join(file))
                .map_err(|why| problems.push(format!("{at}: {why}")))
                .ok(),
        }
    };
    if problems.len() > before {
        return None;
    }
    Some(Provider {
        id: id?,
        base_url: base_url?,
        api_key: api_key?,
    })
}

fn check_model(
    raw: &ModelFile,
    provider: &str,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<Model> {
    let before = problems.len();
    let id = check_name(raw.id.as_deref(), "id", at, problems);
    let upstream = match raw.upstream.as_deref() {
        Some(upstream) => check_name(Some(upstream), "upstream", at, problems),
        None => id.clone(),
    };
    let input = price(
        raw.input_per_million,
        "input_per_million",
        "input",
        at,
        problems,
    );
    let output = price(
        raw.output_per_million,
        "output_per_million",
        "output",
        at,
        problems,
    );
    let cached = price(
        raw.cached_per_million,
        "cached_per_million",
        "cached input",
        at,
        problems,
    );
    let max_output = limit(raw.max_output_tokens, "max_output_tokens", at, problems);
    let context = limit(raw.context_window, "context_window", at, problems);
    if let (Some(max_output), Some(context)) = (max_output, context) {
        if max_output > context {
            problems.push(format!(
                "{at}: max_output_tokens ({max_output}) is larger than context_window ({context})"
            ));
        }
    }
    if problems.len() > before {
        return None;
    }
    Some(Model {
        id: id?,
        upstream: upstream?,
        provider: provider.to_string(),
        prices: Prices {
            input_per_million: input?,
            output_per_million: output?,
            cached_per_million: cached?,
        },
        max_output_tokens: max_output?,
        context_window: context?,
    })
}

fn check_name(
    value: Option<&str>,
    field: &str,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<String> {
    let Some(value) = value else {
        problems.push(format!("{at}: {field} is missing"));
        return None;
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._:/@+".contains(c);
    if value.is_empty() || value.len() > MAX_NAME_LEN || !value.chars().all(allowed) {
        problems.push(format!(
            "{at}: {field} must be 1 to {MAX_NAME_LEN} characters of letters, digits and - . _ : / @ +"
        ));
        return None;
    }
    Some(value.to_string())
}

fn price(
    value: Option<i64>,
    field: &str,
    what: &str,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<MicroUsd> {
    match value {
        None => {
            problems.push(format!(
                "{at}: {field} is missing: the price in micro-USD per million {what} tokens (150000 is $0.15)"
            ));
            None
        }
        Some(v) if v <= 0 => {
            problems.push(format!(
                "{at}: {field} must be greater than zero (micro-USD per million {what} tokens), not {v}"
            ));
            None
        }
        Some(v) if v > MAX_PRICE_PER_MILLION => {
            problems.push(format!(
                "{at}: {field} = {v} is above the largest price accepted ({MAX_PRICE_PER_MILLION} micro-USD per million tokens)"
            ));
            None
        }
        Some(v) => Some(MicroUsd::from_micros(v)),
    }
}

fn limit(value: Option<i64>, field: &str, at: &str, problems: &mut Vec<String>) -> Option<u32> {
    match value {
        None => {
            problems.push(format!("{at}: {field} is missing (a number of tokens)"));
            None
        }
        Some(v) if v <= 0 => {
            problems.push(format!("{at}: {field} must be greater than zero, not {v}"));
            None
        }
        Some(v) if v > MAX_TOKEN_LIMIT => {
            problems.push(format!(
                "{at}: {field} = {v} is above the largest limit accepted ({MAX_TOKEN_LIMIT} tokens)"
            ));
            None
        }
        // MAX_TOKEN_LIMIT fits in a u32.
        Some(v) => u32::try_from(v).ok(),
    }
}

/// `http(s)://host[:port][/path]`, no credentials, query or fragment;
/// returned without a trailing slash. The error completes "base_url ...".
fn check_base_url(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| format!("is not a URL ({e}): give one such as https://api.openai.com/v1"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "must start with http:// or https://, not {}://",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "must not carry credentials: set the key with api_key_env or api_key_file".into(),
        );
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must not have a query (?...) or a fragment (#...)".into());
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

fn syntax_error(text: &str, path: &Path, e: &toml::de::Error) -> CatalogError {
    let offset = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    CatalogError::Syntax {
        path: path.to_path_buf(),
        line,
        column,
        message: without_quoted(e.message()),
    }
}

/// The parser's message with every quoted part (`"..."`, `'...'`) replaced,
/// since serde quotes values (which could be a key) in type errors.
fn without_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quote: Option<char> = None;
    for c in message.chars() {
        match quote {
            Some(q) if c == q => {
                out.push_str("...");
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None if c == '"' || c == '\'' => {
                out.push(c);
                quote = Some(c);
            }
            None => out.push(c),
        }
    }
    if quote.is_some() {
        out.push_str("...");
    }
    out.trim().replace('\n', " ")
}

/// An id from the file, as shown in a message: bounded, printable.
fn shown(value: &str) -> impl fmt::Display + '_ {
    struct Shown<'a>(&'a str);
    impl fmt::Display for Shown<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for c in self.0.chars().take(64) {
                if c.is_control() || c == '"' {
                    f.write_str("?")?;
                } else {
                    write!(f, "{c}")?;
                }
            }
            Ok(())
        }
    }
    Shown(value)
}

#[cfg(test)]
mod tests;
