//! The server's settings, already parsed and validated (the CLI builds them).

use std::time::Duration;

use clawplane_billing::BillingConfig;
use clawplane_domain::UserId;
use clawplane_secrets::SecretString;

use crate::ingress::IngressConfig;
use crate::instances::InstanceSettings;

/// Everything `clawplane serve` needs besides the store and the key ring.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `OA_CONTROL_KEY`: gates `/control/openclaw/*`. Unset: those routes answer 500 saying so.
    pub control_key: Option<SecretString>,
    /// `OA_INTERNAL_KEY`: the seed's beta auth for `/api/openclaw/*`.
    pub internal_key: Option<SecretString>,
    /// Billing settings.
    pub billing: BillingConfig,
    /// Largest request body accepted (default 1 MiB).
    pub body_limit: usize,
    /// How long in-flight requests get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Whether to run the background jobs (monthly grants, metering).
    pub run_jobs: bool,
    /// Provisioning settings.
    pub instances: InstanceSettings,
    /// `OA_INTERNAL_USER_ID`: the seed's single-user beta mode of the
    /// console. Set, the console needs no sign-in and always shows this
    /// user's instance; for an operator who puts it behind their own auth.
    pub console_user: Option<UserId>,
    /// The front door to the gateways.
    pub ingress: IngressConfig,
    /// Memory the console's password hashes may use at once (default
    /// 256 MiB): divided by argon2's memory cost, it is how many sign-ins
    /// and sign-ups hash at the same time.
    pub hash_memory_bytes: u64,
    /// How long a sign-in or sign-up waits for its turn to hash before it
    /// is answered 429 (default 5 s).
    pub hash_wait: Duration,
    /// Sign-in and sign-up attempts allowed per client address per
    /// [`Self::sign_in_window`] (default 20), whatever email they carry.
    pub sign_in_attempts: u32,
    /// The window of [`Self::sign_in_attempts`] (default one minute).
    pub sign_in_window: Duration,
    /// The main listener's timeouts and connection limit.
    pub listener: clawplane_http::ListenerLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            control_key: None,
            internal_key: None,
            billing: BillingConfig::default(),
            body_limit: 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
            run_jobs: true,
            instances: InstanceSettings::default(),
            console_user: None,
            ingress: IngressConfig::default(),
            hash_memory_bytes: 256 * 1024 * 1024,
            hash_wait: Duration::from_secs(5),
            sign_in_attempts: 20,
            sign_in_window: Duration::from_secs(60),
            listener: clawplane_http::ListenerLimits::default(),
        }
    }
}
