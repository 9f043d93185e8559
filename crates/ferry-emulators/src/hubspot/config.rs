//! Configuration of the HubSpot emulator: accounts and credentials, limits, faults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The OAuth client id the emulator accepts by default.
pub const DEFAULT_CLIENT_ID: &str = "ferry-emulator-client-id";
/// The OAuth client secret the emulator accepts by default.
pub const DEFAULT_CLIENT_SECRET: &str = "ferry-emulator-client-secret";

/// Everything the emulator is started with. `Default` gives HubSpot's documented defaults
/// (Free/Starter tier limits, 30-minute access tokens) and no faults.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The account ("portal") id, returned as `hub_id`. HubSpot documents it as an int32.
    pub hub_id: u32,
    /// The account's domain, returned as `hub_domain` by the token-info endpoints.
    pub hub_domain: String,
    /// Private-app access tokens accepted as `Authorization: Bearer <token>`
    /// (`ferry emulate hubspot --token T`). Private apps hold every contacts scope.
    pub private_app_tokens: Vec<String>,
    /// The OAuth app that may connect to the account.
    pub oauth: OAuthClient,
    /// Lifetime of OAuth access tokens, returned as `expires_in` (HubSpot: 1800 s).
    pub access_token_lifetime: Duration,
    /// Lifetime of an authorization code between the redirect and its exchange.
    pub auth_code_lifetime: Duration,
    /// Rate limits.
    pub limits: RateLimits,
    /// Injected faults.
    pub faults: Faults,
    /// How long a write takes to become visible to search (HubSpot: "moments"). Zero makes
    /// writes searchable at once; reads by id are always immediate.
    pub search_visibility_delay: Duration,
    /// Check every answer to a documented operation against HubSpot's published schemas
    /// ([`crate::schema::Specs::hubspot`]) as it is sent, and record violations
    /// ([`super::HubSpotEmulator::schema_violations`]): a connector's tests then know that every
    /// answer their client received conforms, without instrumenting the client.
    pub validate_responses: bool,
    /// Id of the first contact; later ids grow by pseudo-random steps (from `id_seed`), so ids
    /// are neither contiguous nor small, like HubSpot's. The default is above `i32::MAX`.
    pub first_contact_id: u64,
    /// Seed of the id steps.
    pub id_seed: u64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            hub_id: 24_681_357,
            hub_domain: "ferry-emulator.hubspot.com".into(),
            private_app_tokens: Vec::new(),
            oauth: OAuthClient::default(),
            access_token_lifetime: Duration::from_secs(1800),
            auth_code_lifetime: Duration::from_secs(600),
            limits: RateLimits::default(),
            faults: Faults::default(),
            search_visibility_delay: Duration::ZERO,
            validate_responses: true,
            first_contact_id: 37_765_128_953,
            id_seed: 1,
        }
    }
}

/// The OAuth app (client) registered with the emulated account.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    /// `client_id` of the app.
    pub client_id: String,
    /// `client_secret` of the app.
    pub client_secret: String,
    /// Redirect URIs the app registered; `/oauth/authorize` refuses others. Empty accepts any
    /// `http(s)` URI (convenient for tests on random ports).
    pub redirect_uris: Vec<String>,
    /// Scopes the app may request; the authorize page refuses others.
    pub allowed_scopes: Vec<String>,
}

impl Default for OAuthClient {
    fn default() -> Self {
        OAuthClient {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            redirect_uris: Vec::new(),
            allowed_scopes: ALL_SCOPES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// The scopes the emulator knows.
pub const ALL_SCOPES: [&str; 5] = [
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
];

/// Rate limits, as HubSpot documents them (defaults: Free/Starter private app).
///
/// - the 10-second rolling limit counts requests per app (a private-app token, or the OAuth app:
///   refreshing an access token does not give a fresh budget); search is exempt from it
///   (the spec's `x-hubspot-rate-limit-exemptions: ten-secondly`);
/// - the daily limit counts every CRM request of the account, per UTC day;
/// - search has its own per-second limit for the account.
///
/// A request refused with a 429 does not consume budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Requests per rolling window per app (HubSpot: 100 for Free/Starter and OAuth apps, 190 for
    /// Professional/Enterprise private apps).
    pub ten_secondly_max: u32,
    /// Length of the rolling window (HubSpot: 10 s), in milliseconds in JSON.
    #[serde(rename = "ten_secondly_window_ms", with = "millis")]
    pub ten_secondly_window: Duration,
    /// Requests per UTC day per account (HubSpot: 250,000 to 1,000,000 by tier).
    pub daily_max: u64,
    /// Search requests per window per account (HubSpot: "about 4–5 per second"; 5).
    pub search_max: u32,
    /// The search window (1 s), in milliseconds in JSON.
    #[serde(rename = "search_window_ms", with = "millis")]
    pub search_window: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            ten_secondly_max: 100,
            ten_secondly_window: Duration::from_secs(10),
            daily_max: 250_000,
            search_max: 5,
            search_window: Duration::from_secs(1),
        }
    }
}

impl RateLimits {
    /// No limit is ever reached (headers still report the configured maxima).
    pub fn unlimited() -> Self {
        RateLimits {
            ten_secondly_max: u32::MAX,
            daily_max: u64::MAX,
            search_max: u32::MAX,
            ..RateLimits::default()
        }
    }
}

/// Injected faults. Every decision comes from a RNG seeded with `seed`, drawing the same number
/// of values for every API request, so a sequential client sees the same faults on every run.
/// Faults apply to `/crm/…` and `/oauth/v1/…` requests (not to the authorize page nor to
/// `/__emulator/…`); 429 bursts only to `/crm/…`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Seed of the fault RNG; setting faults at run time re-seeds it.
    pub seed: u64,
    /// Share (0–1) of requests answered with a 5xx (500, 502, 503 or 504; 502 and 504 with an
    /// HTML body, as a gateway sends them).
    pub error_rate: f64,
    /// Share (0–1) of injected 5xx answers and timeouts that happen *after* the request took
    /// effect (the write is applied, the answer is lost), as with a real gateway timeout.
    pub after_effect_rate: f64,
    /// Share (0–1) of requests that start a burst of `burst_429_len` consecutive 429s
    /// (TEN_SECONDLY_ROLLING body) regardless of the real budget.
    pub burst_429_rate: f64,
    /// Length of an injected 429 burst.
    pub burst_429_len: u32,
    /// Latency added to every request, in milliseconds in JSON.
    #[serde(rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// Extra random latency, uniform in `0..=latency_jitter`, in milliseconds in JSON.
    #[serde(rename = "latency_jitter_ms", with = "millis")]
    pub latency_jitter: Duration,
    /// Share (0–1) of requests that hang for `hang` and then get a 504.
    pub timeout_rate: f64,
    /// How long a timed-out request hangs before its 504 (clients usually give up first), in
    /// milliseconds in JSON.
    #[serde(rename = "hang_ms", with = "millis")]
    pub hang: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            seed: 0,
            error_rate: 0.0,
            after_effect_rate: 0.0,
            burst_429_rate: 0.0,
            burst_429_len: 3,
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            timeout_rate: 0.0,
            hang: Duration::from_secs(60),
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
