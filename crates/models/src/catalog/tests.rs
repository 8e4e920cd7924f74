//! The models file's checks: what is accepted, and the sentence for each
//! mistake.

use std::path::Path;

use clawplane_secrets::ExposeSecret;

use super::*;

const GOOD: &str = r#"
default = "gpt-mini"
[[providers]]
id = "openai"
base_url = "https://api.openai.com/v1/"
api_key_env = "OPENAI_API_KEY"
[[providers.models]]
id = "gpt-mini"
upstream = "gpt-4o-mini"
input_per_million = 150000
output_per_million = 600000
cached_per_million = 75000
max_output_tokens = 16384
context_window = 128000
[[providers.models]]
id = "gpt-big"
input_per_million = 2500000
output_per_million = 10000000
cached_per_million = 1250000
max_output_tokens = 16384
context_window = 128000
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "OPENAI_API_KEY" => Some("sk-from-env\n".into()),
        "EMPTY" => Some("  ".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Catalog, CatalogError> {
    Catalog::parse(text, Path::new("/etc/clawplane/models.toml"), &env)
}

fn problems(text: &str) -> String {
    let error = parse(text).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("/etc/clawplane/models.toml"), "{message}");
    message
}

#[test]
fn a_good_file_gives_its_models_providers_and_default() {
    let catalog = parse(GOOD).unwrap();
    assert_eq!(catalog.default_model().id, "gpt-mini");
    let (model, provider) = catalog.route("gpt-big").unwrap();
    assert_eq!(model.upstream, "gpt-big", "upstream defaults to the id");
    assert_eq!(model.prices.output_per_million.micros(), 10_000_000);
    assert_eq!(
        provider.chat_completions_url(),
        "https://api.openai.com/v1/chat/completions"
    );
    assert_eq!(provider.api_key.expose_secret(), "sk-from-env");
    assert!(
        !format!("{catalog:?}").contains("sk-from-env"),
        "Debug shows no key"
    );
    assert_eq!(catalog.models().len(), 2);
    assert!(catalog.route("nope").is_none());
}

#[test]
fn a_key_file_is_read_trimmed_relative_to_the_models_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openai.key"), "sk-from-file\n").unwrap();
    std::fs::write(dir.path().join("empty.key"), "\n").unwrap();
    let text = GOOD.replace(
        "api_key_env = \"OPENAI_API_KEY\"",
        "api_key_file = \"openai.key\"",
    );
    let path = dir.path().join("models.toml");
    std::fs::write(&path, &text).unwrap();
    let catalog = Catalog::load(&path, &env).unwrap();
    assert_eq!(
        catalog.providers()[0].api_key.expose_secret(),
        "sk-from-file"
    );

    let empty = GOOD.replace(
        "api_key_env = \"OPENAI_API_KEY\"",
        "api_key_file = \"empty.key\"",
    );
    let error = Catalog::parse(&empty, &path, &env).unwrap_err().to_string();
    assert!(error.contains("empty.key is empty"), "{error}");
    let missing = GOOD.replace(
        "api_key_env = \"OPENAI_API_KEY\"",
        "api_key_file = \"gone.key\"",
    );
    let error = Catalog::parse(&missing, &path, &env)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("cannot read the key file") && error.contains("gone.key"),
        "{error}"
    );
}

#[test]
fn a_key_written_in_the_file_is_refused_and_never_echoed() {
    let text = GOOD.replace(
        "api_key_env = \"OPENAI_API_KEY\"",
        "api_key = \"sk-inline-secret\"",
    );
    let message = problems(&text);
    assert!(message.contains("api_key is not allowed"), "{message}");
    assert!(!message.contains("sk-inline-secret"), "{message}");
    // Also when it comes beside a proper source, or in the env field.
    let text = GOOD.replace(
        "api_key_env = \"OPENAI_API_KEY\"",
        "api_key_env = \"OPENAI_API_KEY\"\napi_key = \"sk-inline-secret\"",
    );
    assert!(!problems(&text).contains("sk-inline-secret"));
    let text = GOOD.replace("\"OPENAI_API_KEY\"", "\"sk-inline-secret-value\"");
    let message = problems(&text);
    assert!(
        message.contains("not the key") && !message.contains("sk-inline"),
        "{message}"
    );
}

#[test]
fn key_sources_must_be_exactly_one_and_present() {
    let both = GOOD.replace(
        "api_key_env = \"OPENAI_API_KEY\"",
        "api_key_env = \"OPENAI_API_KEY\"\napi_key_file = \"/k\"",
    );
    assert!(problems(&both).contains("both api_key_env and api_key_file"));
    let neither = GOOD.replace("api_key_env = \"OPENAI_API_KEY\"\n", "");
    assert!(problems(&neither).contains("no key source"));
    let unset = GOOD.replace("OPENAI_API_KEY", "UNSET_KEY");
    assert!(problems(&unset).contains("UNSET_KEY (api_key_env) is not set"));
    let empty = GOOD.replace("OPENAI_API_KEY", "EMPTY");
    assert!(problems(&empty).contains("EMPTY (api_key_env) is empty"));
}

#[test]
fn the_default_must_name_a_model() {
    let message = problems(&GOOD.replace("default = \"gpt-mini\"", "default = \"gpt-huge\""));
    assert!(
        message.contains("default = \"gpt-huge\" is not a model id")
            && message.contains("gpt-mini, gpt-big"),
        "{message}"
    );
    assert!(problems(&GOOD.replace("default = \"gpt-mini\"", "")).contains("default is missing"));
}

#[test]
fn model_ids_are_unique_across_providers() {
    let message = problems(&GOOD.replace("id = \"gpt-big\"", "id = \"gpt-mini\""));
    assert!(
        message.contains("models[1] (id \"gpt-mini\")") && message.contains("used twice"),
        "{message}"
    );
}

#[test]
fn base_urls_must_be_http_or_https_without_credentials() {
    for (url, expected) in [
        (
            "ftp://example.com/v1",
            "must start with http:// or https://",
        ),
        ("not a url", "is not a URL"),
        (
            "https://user:pw@example.com/v1",
            "must not carry credentials",
        ),
        ("https://example.com/v1?x=1", "must not have a query"),
    ] {
        let message = problems(&GOOD.replace("https://api.openai.com/v1/", url));
        assert!(message.contains(expected), "{url}: {message}");
    }
    let plain =
        parse(&GOOD.replace("https://api.openai.com/v1/", "http://127.0.0.1:9999")).unwrap();
    assert_eq!(plain.providers()[0].base_url, "http://127.0.0.1:9999");
}

#[test]
fn prices_and_limits_must_be_positive_and_every_problem_is_listed() {
    let text = GOOD
        .replacen("input_per_million = 150000", "input_per_million = 0", 1)
        .replacen("output_per_million = 600000", "output_per_million = -5", 1)
        .replacen("max_output_tokens = 16384", "max_output_tokens = 0", 1)
        .replacen("context_window = 128000", "context_window = 1000000000", 1);
    let message = problems(&text);
    assert!(message.contains("4 problem(s)"), "{message}");
    assert!(message.contains("providers[0] (id \"openai\"), models[0] (id \"gpt-mini\"): input_per_million must be greater than zero"), "{message}");
    assert!(message.contains("output_per_million must be greater than zero (micro-USD per million output tokens), not -5"));
    assert!(message.contains("max_output_tokens must be greater than zero"));
    assert!(message.contains("context_window = 1000000000 is above the largest limit"));
    let over = GOOD.replacen("max_output_tokens = 16384", "max_output_tokens = 200000", 1);
    assert!(problems(&over)
        .contains("max_output_tokens (200000) is larger than context_window (128000)"));
    let missing = GOOD.replacen("cached_per_million = 75000\n", "", 1);
    assert!(problems(&missing).contains("cached_per_million is missing"));
}

#[test]
fn unknown_fields_and_bad_toml_say_where() {
    let error = parse(&GOOD.replace("upstream = \"gpt-4o-mini\"", "upstreem = \"gpt-4o-mini\""))
        .unwrap_err();
    let CatalogError::Syntax { line, message, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!(*line, 9, "{message}");
    assert!(message.contains("unknown field `upstreem`"), "{message}");
    let error = parse("default = ").unwrap_err();
    assert!(
        matches!(error, CatalogError::Syntax { line: 1, .. }),
        "{error}"
    );
    let typed = parse(&GOOD.replace(
        "input_per_million = 150000",
        "input_per_million = \"sk-looks-like-a-key\"",
    ))
    .unwrap_err();
    assert!(!typed.to_string().contains("sk-looks"), "{typed}");
}

#[test]
fn an_unreadable_file_names_its_path() {
    let error = Catalog::load(Path::new("/nonexistent/models.toml"), &env).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("cannot read the models file /nonexistent/models.toml"),
        "{error}"
    );
}

#[test]
fn an_empty_file_asks_for_providers_and_a_default() {
    let message = problems("");
    assert!(
        message.contains("no [[providers]]") && message.contains("default is missing"),
        "{message}"
    );
}
