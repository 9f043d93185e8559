//! Configuration of the Salesforce emulator: the connected app, the integration user, limits
//! and faults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The connected app's consumer key the emulator accepts by default.
pub const DEFAULT_CLIENT_ID: &str = "3MVG9ferry.emulator.consumer.key";
/// The connected app's consumer secret the emulator accepts by default.
pub const DEFAULT_CLIENT_SECRET: &str = "ferry-emulator-consumer-secret";
/// The org's user the emulator signs in by default (the JWT bearer flow's `sub`).
pub const DEFAULT_USERNAME: &str = "integration@ferry-emulator.test";
/// The API version `GET /services/data/` lists last.
pub const LATEST_VERSION: &str = "62.0";

/// Everything the emulator is started with. `Default`: one connected app that requires its
/// secret, a blocking duplicate rule on email, 100,000 API requests a day, two-hour sessions,
/// no faults.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The connected app's consumer key (`client_id`, the JWT's `iss`).
    pub client_id: String,
    /// The connected app's consumer secret.
    pub client_secret: String,
    /// "Require Secret for Web Server Flow": without it a PKCE exchange needs no secret.
    pub require_secret: bool,
    /// Callback URLs of the connected app; empty accepts any `http(s)` URL.
    pub redirect_uris: Vec<String>,
    /// The certificate (or public key) uploaded to the connected app for the JWT bearer flow,
    /// PEM. `None`: the JWT bearer flow is refused.
    pub jwt_certificate: Option<String>,
    /// The integration user (pre-authorized for the connected app).
    pub username: String,
    /// Where API calls go, as the token answer's `instance_url`. `None`: the scheme and
    /// `Host` of the token request.
    pub instance_url: Option<String>,
    /// Served over TLS (only changes the default `instance_url`'s scheme).
    pub tls: bool,
    /// How long an access token (session) lives after its last use (Salesforce's session
    /// timeout, 2 hours by default).
    pub session_lifetime: Duration,
    /// How long an authorization code may wait for its exchange (Salesforce: 15 minutes).
    pub auth_code_lifetime: Duration,
    /// Block creating or updating a Contact/Lead whose email another live record of the object
    /// has (`DUPLICATES_DETECTED`), as a duplicate rule with the action "Block" does.
    pub block_duplicate_emails: bool,
    /// The daily API request limit.
    pub limits: Limits,
    /// Injected faults.
    pub faults: Faults,
    /// How many polls of a closed Bulk API 2.0 job read `InProgress` before its final state.
    pub bulk_polls_in_progress: u32,
    /// How long a query locator stays open without being used: the SOAP API guide's
    /// QueryLocator page says "expire automatically after 15 minutes of inactivity" (newer help
    /// articles say results stay for two days; a client must cope with either). `ZERO` expires
    /// every locator at once, which makes every `nextRecordsUrl` answer `INVALID_QUERY_LOCATOR`.
    pub query_locator_idle: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            require_secret: true,
            redirect_uris: Vec::new(),
            jwt_certificate: None,
            username: DEFAULT_USERNAME.into(),
            instance_url: None,
            tls: false,
            session_lifetime: Duration::from_secs(2 * 3600),
            auth_code_lifetime: Duration::from_secs(15 * 60),
            block_duplicate_emails: true,
            limits: Limits::default(),
            faults: Faults::default(),
            bulk_polls_in_progress: 1,
            query_locator_idle: Duration::from_secs(15 * 60),
        }
    }
}

/// API request limits. Every call under `/services/data/vXX.X/` counts (the Versions list does
/// not); once `daily_max` calls were made in the current UTC day, calls get 403
/// `REQUEST_LIMIT_EXCEEDED` (not counted).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// `DailyApiRequests` of the org.
    pub daily_max: u64,
    /// Calls already made today (set it to start a test near the limit).
    pub used: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            daily_max: 100_000,
            used: 0,
        }
    }
}

/// Injected faults. Every decision comes from a RNG seeded with `seed`, drawing the same number
/// of values for every API request, so a sequential client sees the same faults on every run.
/// Faults apply to `/services/data/vXX.X/…` and to the token endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Seed of the fault RNG; setting faults at run time re-seeds it.
    pub seed: u64,
    /// Share (0–1) of requests answered with a 500 `UNKNOWN_EXCEPTION` or a 503
    /// `SERVER_UNAVAILABLE`.
    pub error_rate: f64,
    /// Share (0–1) of injected errors that happen after the request took effect.
    pub after_effect_rate: f64,
    /// Share (0–1) of API requests whose session expires just before they are served
    /// (401 `INVALID_SESSION_ID`; the refresh token still works).
    pub session_expiry_rate: f64,
    /// Latency added to every request, in milliseconds in JSON.
    #[serde(rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// Extra random latency, uniform in `0..=latency_jitter`, in milliseconds in JSON.
    #[serde(rename = "latency_jitter_ms", with = "millis")]
    pub latency_jitter: Duration,
    /// Only requests to this endpoint get faults, keyed as in [`super::Counters::requests`]
    /// (e.g. `"PATCH /services/data/vXX.X/jobs/ingest/{id}"`). `None`: every request.
    pub only: Option<String>,
    /// At most this many errors are injected, then none. `None`: no cap.
    pub max_errors: Option<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            seed: 0,
            error_rate: 0.0,
            after_effect_rate: 0.0,
            session_expiry_rate: 0.0,
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            only: None,
            max_errors: None,
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
