//! Where backups go: a local directory (`file:///abs/path`) or S3-compatible storage
//! (`s3://bucket/prefix`), and the `object_store` client built for each.
//!
//! S3 settings come from the caller ([`S3Settings`], which the CLI fills from the environment
//! through [`S3Settings::from_lookup`]), never from the URL: a URL with `user:password@` in it
//! is refused, because URLs end up in logs and process lists.
//! Credentials are required for S3: without them the client would fall back to the cloud
//! instance-metadata endpoint, which is both a surprise and traffic off this machine.

use std::{fmt, path::PathBuf, sync::Arc, time::Duration};

use object_store::{
    aws::AmazonS3Builder, local::LocalFileSystem, ClientOptions, ObjectStore, RetryConfig,
};
use secrecy::{ExposeSecret, SecretString};

use crate::error::{BackupError, Redactor};

/// S3 connection settings. The CLI reads them from the environment (the names below) and
/// hands them down; this crate never reads the environment itself.
#[derive(Clone, Debug, Default)]
pub struct S3Settings {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// `AWS_SECRET_ACCESS_KEY`; redacted in `Debug`, never in an error message.
    pub secret_access_key: Option<SecretString>,
    /// `AWS_REGION`; `auto` (what Cloudflare R2 expects) when unset.
    pub region: Option<String>,
    /// `AWS_ENDPOINT_URL` or `CLAWPLANE_S3_ENDPOINT`: R2, MinIO and the like. When set, requests
    /// use path-style addressing (`https://endpoint/bucket/key`).
    pub endpoint: Option<String>,
    /// `CLAWPLANE_S3_ALLOW_HTTP=true`: allow a plain `http://` endpoint (tests, a LAN MinIO).
    pub allow_http: bool,
    /// How long the client waits for the store (see [`S3Timeouts`] for the defaults).
    pub timeouts: S3Timeouts,
}

/// The S3 client's time limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S3Timeouts {
    /// Opening a connection (default 5 s).
    pub connect: Duration,
    /// One request, body included (default 120 s).
    pub request: Duration,
    /// Retries of a failed request, in all (default 60 s).
    pub retry: Duration,
    /// Retries of a failed request, at most (default 3).
    pub max_retries: usize,
}

impl Default for S3Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(120),
            retry: Duration::from_secs(60),
            max_retries: 3,
        }
    }
}

impl S3Settings {
    /// The variables this reads, for the CLI's help and the README's settings table.
    pub const VARIABLES: [&'static str; 6] = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "CLAWPLANE_S3_ENDPOINT",
        "CLAWPLANE_S3_ALLOW_HTTP",
    ];

    /// The settings from the variables `lookup` answers (the CLI passes the process
    /// environment); empty or blank values count as unset. The time limits are the defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        Self {
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY").map(SecretString::from),
            region: var("AWS_REGION"),
            endpoint: var("AWS_ENDPOINT_URL").or_else(|| var("CLAWPLANE_S3_ENDPOINT")),
            allow_http: var("CLAWPLANE_S3_ALLOW_HTTP")
                .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes")),
            timeouts: S3Timeouts::default(),
        }
    }
}

/// A parsed backup destination. `Display` prints its URL (never a secret).
#[derive(Clone, Debug)]
pub struct BackupTarget {
    kind: TargetKind,
}

#[derive(Clone, Debug)]
enum TargetKind {
    Local(PathBuf),
    S3 {
        bucket: String,
        prefix: String,
        settings: S3Settings,
    },
}

impl BackupTarget {
    /// Parses `file:///abs/path` (or a bare absolute path) or `s3://bucket/prefix`.
    ///
    /// For S3 the settings must hold both keys; a plain-`http` endpoint needs `allow_http`;
    /// without an endpoint (AWS itself) a real region is needed, since `auto` is R2's.
    pub fn parse(url: &str, s3: &S3Settings) -> Result<Self, BackupError> {
        let invalid = |reason: &str| BackupError::InvalidTarget {
            url: without_credentials(url),
            reason: reason.to_string(),
        };
        if let Some(rest) = url.strip_prefix("file://") {
            return Self::local(rest).map_err(&invalid);
        }
        if url.starts_with('/') {
            return Self::local(url).map_err(&invalid);
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(invalid("use file:///absolute/path or s3://bucket/prefix"));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.contains('@') || bucket.contains(':') {
            return Err(invalid(
                "credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        }
        if !valid_bucket(bucket) {
            return Err(invalid(
                "the bucket name must be 3-63 characters of a-z, 0-9, '.' and '-'",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() && !prefix.split('/').all(crate::valid_key_segment) {
            return Err(invalid(
                "each prefix segment must be letters, digits, '.', '_' or '-' (not '.' or '..')",
            ));
        }
        if s3.access_key_id.is_none() || s3.secret_access_key.is_none() {
            return Err(invalid(
                "S3 needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
            ));
        }
        match s3.endpoint.as_deref() {
            Some(e) if e.starts_with("http://") && !s3.allow_http => {
                return Err(invalid(
                    "the endpoint is plain http; set CLAWPLANE_S3_ALLOW_HTTP=true to allow it",
                ))
            }
            Some(e) if !e.starts_with("http://") && !e.starts_with("https://") => {
                return Err(invalid("the endpoint must start with https:// or http://"))
            }
            None if s3.region.as_deref().is_none_or(|r| r == "auto") => {
                return Err(invalid(
                    "set AWS_REGION for AWS S3, or AWS_ENDPOINT_URL for R2, MinIO and others",
                ))
            }
            _ => {}
        }
        Ok(Self {
            kind: TargetKind::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
                settings: s3.clone(),
            },
        })
    }

    fn local(path: &str) -> Result<Self, &'static str> {
        if !path.starts_with('/') {
            return Err("a local target needs an absolute path: file:///absolute/path");
        }
        if path.split('/').any(|c| c == "..") {
            return Err("a local target path may not contain '..'");
        }
        Ok(Self {
            kind: TargetKind::Local(PathBuf::from(path)),
        })
    }

    /// Builds the client and the key prefix under which all instances' backups live.
    pub(crate) fn connect(&self) -> Result<Connected, BackupError> {
        let url = self.to_string();
        let invalid = |message: String| BackupError::InvalidTarget {
            url: url.clone(),
            reason: message,
        };
        match &self.kind {
            TargetKind::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| BackupError::Unreachable {
                    store: url.clone(),
                    message: format!("cannot create {}: {e}", dir.display()),
                })?;
                let fs = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| invalid(e.to_string()))?
                    // Deleting a manifest's last blob also removes the then empty fan-out dir.
                    .with_automatic_cleanup(true);
                Ok(Connected {
                    store: Arc::new(fs),
                    prefix: String::new(),
                    redactor: Redactor::default(),
                })
            }
            TargetKind::S3 {
                bucket,
                prefix,
                settings,
            } => {
                let secret = settings.secret_access_key.clone().unwrap_or_default();
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(settings.region.as_deref().unwrap_or("auto"))
                    .with_access_key_id(settings.access_key_id.clone().unwrap_or_default())
                    .with_secret_access_key(secret.expose_secret())
                    .with_client_options(
                        ClientOptions::new()
                            .with_allow_http(settings.allow_http)
                            .with_connect_timeout(settings.timeouts.connect)
                            .with_timeout(settings.timeouts.request),
                    )
                    .with_retry(RetryConfig {
                        max_retries: settings.timeouts.max_retries,
                        retry_timeout: settings.timeouts.retry,
                        ..RetryConfig::default()
                    });
                if let Some(endpoint) = &settings.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                let redactor = Redactor::new([secret]);
                let store = builder
                    .build()
                    .map_err(|e| invalid(redactor.clean_error(&e)))?;
                Ok(Connected {
                    store: Arc::new(store),
                    prefix: prefix.clone(),
                    redactor,
                })
            }
        }
    }
}

/// An object store client plus the key prefix the target URL named.
pub(crate) struct Connected {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) prefix: String,
    pub(crate) redactor: Redactor,
}

impl fmt::Display for BackupTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            TargetKind::Local(dir) => write!(f, "file://{}", dir.display()),
            TargetKind::S3 { bucket, prefix, .. } if prefix.is_empty() => {
                write!(f, "s3://{bucket}")
            }
            TargetKind::S3 { bucket, prefix, .. } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// The URL for messages: any `user:password@` part is replaced.
fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(a)) if a > s => {
            format!("{}://[credentials removed]@{}", &url[..s], &url[a + 1..])
        }
        _ => url.to_string(),
    }
}

fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> S3Settings {
        S3Settings {
            access_key_id: Some("AKID".into()),
            secret_access_key: Some(SecretString::from("very-secret")),
            endpoint: Some("https://r2.example".into()),
            ..S3Settings::default()
        }
    }

    #[test]
    fn parses_local_and_s3_urls() {
        let t = BackupTarget::parse("file:///var/backups/claw", &S3Settings::default()).unwrap();
        assert_eq!(t.to_string(), "file:///var/backups/claw");
        let t = BackupTarget::parse("s3://my-bucket/a/b/", &keys()).unwrap();
        assert_eq!(t.to_string(), "s3://my-bucket/a/b");
    }

    #[test]
    fn refuses_relative_paths_credentials_in_urls_and_missing_keys() {
        let none = S3Settings::default();
        assert!(BackupTarget::parse("file://relative", &none).is_err());
        assert!(BackupTarget::parse("ftp://x", &none).is_err());
        let err = BackupTarget::parse("s3://AKID:very-secret@bucket/p", &keys()).unwrap_err();
        assert!(!err.to_string().contains("very-secret"), "{err}");
        let err = BackupTarget::parse("s3://bucket/p", &none).unwrap_err();
        assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
        let http = S3Settings {
            endpoint: Some("http://127.0.0.1:9000".into()),
            ..keys()
        };
        let err = BackupTarget::parse("s3://bucket/p", &http).unwrap_err();
        assert!(err.to_string().contains("CLAWPLANE_S3_ALLOW_HTTP"), "{err}");
    }

    #[test]
    fn settings_come_from_the_lookup_blank_values_unset() {
        let vars = [
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
            ("AWS_REGION", "  "),
            ("CLAWPLANE_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("CLAWPLANE_S3_ALLOW_HTTP", "Yes"),
        ];
        let s = S3Settings::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        });
        assert_eq!(s.access_key_id.as_deref(), Some("AKID"));
        assert!(s.region.is_none());
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(s.allow_http);
        assert_eq!(s.timeouts, S3Timeouts::default());
    }

    #[test]
    fn debug_output_never_shows_the_secret_key() {
        let t = BackupTarget::parse("s3://bucket/p", &keys()).unwrap();
        assert!(!format!("{t:?}").contains("very-secret"));
    }
}
