//! The seed's provisioner: the runtime already exists somewhere, and its URL
//! and names are configured (the CLI reads the seed's variables
//! `OPENCLAW_RUNTIME_URL` or `OPENCLAW_RUNTIME_URL_TEMPLATE` with `{user_id}`,
//! `OPENCLAW_RUNTIME_NAME` or `_PREFIX`, `OPENCLAW_R2_BUCKET` or `_PREFIX`,
//! `CF_ACCOUNT_ID`, `OPENCLAW_CF_WORKER_NAME`, `OPENCLAW_CF_CONTAINER_APP_NAME`
//! into [`StaticSettings`]). Ids are sanitised to `[a-z0-9-]`.

use async_trait::async_trait;
use clawplane_domain::{Instance, InstanceFields, RuntimeName};

use super::{ProvisionError, Provisioner, RuntimeSecrets};

/// The seed's settings; empty values are `None` (the CLI trims them).
#[derive(Debug, Clone, Default)]
pub struct StaticSettings {
    /// `OPENCLAW_RUNTIME_URL`.
    pub runtime_url: Option<String>,
    /// `OPENCLAW_RUNTIME_URL_TEMPLATE` (`{user_id}` is replaced).
    pub runtime_url_template: Option<String>,
    /// `OPENCLAW_RUNTIME_NAME`.
    pub runtime_name: Option<String>,
    /// `OPENCLAW_RUNTIME_NAME_PREFIX`.
    pub runtime_name_prefix: Option<String>,
    /// `OPENCLAW_R2_BUCKET`.
    pub r2_bucket: Option<String>,
    /// `OPENCLAW_R2_BUCKET_PREFIX`.
    pub r2_bucket_prefix: Option<String>,
    /// `CF_ACCOUNT_ID`.
    pub cf_account_id: Option<String>,
    /// `OPENCLAW_CF_WORKER_NAME`.
    pub cf_worker_name: Option<String>,
    /// `OPENCLAW_CF_CONTAINER_APP_NAME`.
    pub cf_container_app_name: Option<String>,
}

/// Records the configured runtime for each instance.
#[derive(Debug, Clone)]
pub struct StaticProvisioner {
    settings: StaticSettings,
}

impl StaticProvisioner {
    /// A provisioner over `settings`.
    pub fn new(settings: StaticSettings) -> Self {
        StaticProvisioner { settings }
    }

    fn fields(&self, instance: &Instance) -> Result<InstanceFields, ProvisionError> {
        let s = &self.settings;
        let user = RuntimeName::sanitize(instance.user_id.as_str())
            .map(|n| n.as_str().to_owned())
            .unwrap_or_else(|| instance.id.to_string());
        let runtime_url = match (&s.runtime_url_template, &s.runtime_url) {
            (Some(template), _) => template.replace("{user_id}", &user),
            (None, Some(url)) => url.clone(),
            (None, None) => {
                return Err(ProvisionError(
                    "the static provisioner needs OPENCLAW_RUNTIME_URL or OPENCLAW_RUNTIME_URL_TEMPLATE".into(),
                ))
            }
        };
        let named = |fixed: &Option<String>, prefix: &Option<String>| {
            fixed.clone().or_else(|| {
                prefix.as_ref().and_then(|p| {
                    RuntimeName::sanitize(&format!("{p}{user}")).map(|n| n.as_str().to_owned())
                })
            })
        };
        Ok(InstanceFields {
            runtime_url: Some(runtime_url),
            runtime_name: named(&s.runtime_name, &s.runtime_name_prefix),
            provisioner: Some("static".into()),
            r2_bucket_name: named(&s.r2_bucket, &s.r2_bucket_prefix),
            cf_account_id: s.cf_account_id.clone(),
            cf_worker_name: s.cf_worker_name.clone(),
            cf_container_app_name: s.cf_container_app_name.clone(),
            ..Default::default()
        })
    }
}

#[async_trait]
impl Provisioner for StaticProvisioner {
    fn name(&self) -> &'static str {
        "static"
    }

    async fn provision(
        &self,
        instance: &Instance,
        _secrets: &RuntimeSecrets,
    ) -> Result<InstanceFields, ProvisionError> {
        self.fields(instance)
    }

    async fn ensure_running(
        &self,
        instance: &Instance,
        _secrets: &RuntimeSecrets,
    ) -> Result<InstanceFields, ProvisionError> {
        self.fields(instance)
    }

    async fn restart(
        &self,
        _instance: &Instance,
        _secrets: &RuntimeSecrets,
    ) -> Result<InstanceFields, ProvisionError> {
        Err(ProvisionError(
            "a static runtime is run by its operator: restart it there to apply the change".into(),
        ))
    }

    async fn remove(&self, _instance: &Instance) -> Result<(), ProvisionError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(user: &str) -> Instance {
        clawplane_testkit::provisioning_instance(user)
    }

    #[test]
    fn the_template_and_prefixes_use_the_sanitised_user_id() {
        let p = StaticProvisioner::new(StaticSettings {
            runtime_url_template: Some("https://{user_id}.runtime.example".into()),
            runtime_url: Some("https://ignored.example".into()),
            runtime_name_prefix: Some("oc-".into()),
            r2_bucket_prefix: Some("oc-backups-".into()),
            cf_account_id: Some("acct".into()),
            ..Default::default()
        });
        let f = p.fields(&instance("User_42@Example")).unwrap();
        assert_eq!(
            f.runtime_url.as_deref(),
            Some("https://user-42-example.runtime.example")
        );
        assert_eq!(f.runtime_name.as_deref(), Some("oc-user-42-example"));
        assert_eq!(
            f.r2_bucket_name.as_deref(),
            Some("oc-backups-user-42-example")
        );
        assert_eq!(f.cf_account_id.as_deref(), Some("acct"));
        assert_eq!(f.provisioner.as_deref(), Some("static"));
    }

    #[test]
    fn without_a_url_it_says_what_to_set() {
        let err = StaticProvisioner::new(StaticSettings::default())
            .fields(&instance("u"))
            .unwrap_err();
        assert!(err.0.contains("OPENCLAW_RUNTIME_URL"));
    }
}
