//! What a connector says about itself: the screens, the API's schema and the error dictionary
//! are built from its [`Description`], so that adding a platform is one folder and one registry
//! line.

use ferry_core::errors::ErrorCode;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// Where a kind is listed on Browse Available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Two-way or one-way sync with a CRM or SIS over its API.
    CrmSync,
    /// Files Ferry uploads to the institution's SFTP server on a schedule.
    SftpOutbound,
    /// Files the institution uploads to Ferry.
    InboundFiles,
}

impl Category {
    /// Every category, in the order Browse Available lists them.
    pub const ALL: [Category; 3] = [
        Category::CrmSync,
        Category::SftpOutbound,
        Category::InboundFiles,
    ];

    /// The heading people see.
    pub fn label(self) -> &'static str {
        match self {
            Category::CrmSync => "CRM and SIS sync",
            Category::SftpOutbound => "SFTP outbound",
            Category::InboundFiles => "Inbound files",
        }
    }

    /// The wire spelling (`crm_sync`, `sftp_outbound`, `inbound_files`).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::CrmSync => "crm_sync",
            Category::SftpOutbound => "sftp_outbound",
            Category::InboundFiles => "inbound_files",
        }
    }
}

/// How a secret is entered and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// A one-line password or API key.
    Password,
    /// A multi-line private key (PEM or OpenSSH).
    PrivateKey,
    /// An access token.
    Token,
}

/// One secret a kind accepts. Secrets are write-only: screens and answers only say whether
/// each is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SecretField {
    /// The name in the API (`secrets.password`).
    pub name: &'static str,
    /// The form's label.
    pub label: &'static str,
    /// How it is entered.
    pub kind: SecretKind,
    /// The help text under the field.
    pub help: &'static str,
}

/// The platform a kind belongs to: one card on Browse Available, and one page listing the
/// platform's instance types and configured instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Platform {
    /// Identifier in URLs, e.g. `hubspot`: lowercase letters, digits and dashes.
    pub id: &'static str,
    /// The platform's name, e.g. `HubSpot`.
    pub name: &'static str,
    /// One paragraph on what Ferry does with it.
    pub summary: &'static str,
    /// Its own screen beyond the instances (e.g. templates and uploaded files), if it has one:
    /// the sidebar entry opens it, and the platform page links to it.
    pub page: Option<&'static str>,
}

/// Everything the rest of Ferry needs to know about a connector kind besides running it.
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    /// The kind, as in [`Connector::kind`](crate::Connector::kind).
    pub kind: &'static str,
    /// The instance type's name, e.g. `HubSpot → Ferry`, also the Type column of Recent Runs.
    pub label: &'static str,
    /// One instance's name, e.g. `EAB Notes Export`: the form of a new instance is headed
    /// "New {title}" (the label unless the seeds say otherwise).
    pub title: &'static str,
    /// One sentence on what an instance of this type does (the Available list).
    pub summary: &'static str,
    /// Where Browse Available lists it.
    pub category: Category,
    /// The platform card it belongs to.
    pub platform: Platform,
    /// The JSON Schema of the config, generated from the config structs: their doc comments are
    /// each field's help text.
    pub config_schema: Value,
    /// The secrets it accepts.
    pub secrets: Vec<SecretField>,
    /// A config a new instance starts from (it need not be complete: a form fills the rest).
    pub default_config: Value,
    /// The codes it can write to the Sync Log or a run's error, with meaning and next step.
    pub error_codes: Vec<ErrorCode>,
    /// The OAuth provider that connects its accounts, if it has one (e.g. `hubspot`).
    pub oauth_provider: Option<&'static str>,
}

impl Description {
    /// A description with an empty object schema and no secrets, default config or error codes
    /// of its own; fill in the rest with struct update syntax.
    pub fn new(
        kind: &'static str,
        label: &'static str,
        category: Category,
        platform: Platform,
    ) -> Self {
        Description {
            kind,
            label,
            title: label,
            summary: "",
            category,
            platform,
            config_schema: serde_json::json!({"type": "object"}),
            secrets: Vec::new(),
            default_config: serde_json::json!({}),
            error_codes: Vec::new(),
            oauth_provider: None,
        }
    }

    /// The names of the secrets it accepts.
    pub fn secret_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.secrets.iter().map(|s| s.name)
    }
}

/// The form widgets a config schema may ask for with `x-ferry-widget`, for what a schema cannot
/// say (the screens draw every other field from the schema itself):
///
/// - `schedule_blocks`: a list of the 3-hour blocks (0–7) of the day;
/// - `contact_fields`: a list of Ferry's contact fields, in order (columns);
/// - `filter_rows`: a list of `{field, values}` rows, with "add row";
/// - `data_mapping`: a list of `{local, remote}` pairs, the remote's properties listed from the
///   remote ([`Connector::remote_properties`](crate::Connector::remote_properties)); its
///   `x-ferry-fixed` (`{local, remote, label}`) is the pair that is always there;
/// - `template`: a text with placeholders, listed in `x-ferry-placeholders` (`[{name, description}]`);
/// - `oauth_account`: an account connected through the kind's OAuth provider;
/// - `opt_in_path`: one of the institution's opt-in paths (its ID), or none; a save naming a
///   path the institution does not have is refused on that field.
///
/// A schema also says, where it needs to: `x-ferry-sections` (top level: the form's cards,
/// `[{title, fields}]`), `x-ferry-order` (an object's field order), where `@secrets` and
/// `@test` place the secrets and Test Connection; `x-ferry-labels` (an enumeration's words);
/// `x-ferry-learned` (a field Test Connection fills in from its report's detail of that name);
/// `x-ferry-submit` (the save button's words).
pub const FORM_WIDGETS: &[&str] = &[
    "schedule_blocks",
    "contact_fields",
    "filter_rows",
    "data_mapping",
    "template",
    "oauth_account",
    "opt_in_path",
];

/// An account connected through an OAuth provider, ready to store (its tokens sealed with it).
#[derive(Debug, Clone)]
pub struct ConnectedAccount {
    /// The account's ID at the provider (HubSpot: the hub ID).
    pub external_id: String,
    /// A name for people.
    pub label: String,
    /// The tokens, in the provider's stored form (sealed at rest by the store).
    pub tokens: Value,
}

/// An OAuth provider that connects accounts for a connector's instances, behind Ferry's
/// generic routes `/oauth/{id}/start` and `/oauth/{id}/callback`.
#[async_trait::async_trait]
pub trait OAuthProvider: Send + Sync {
    /// The provider's identifier in URLs and stored accounts, e.g. `hubspot`.
    fn id(&self) -> &'static str;

    /// The provider's name, e.g. `HubSpot`.
    fn name(&self) -> &'static str;

    /// Whether this server has the provider's OAuth app (client ID and secret).
    fn is_configured(&self) -> bool;

    /// Which settings configure the app, for a form to say when it is not configured.
    fn setup_hint(&self) -> &'static str;

    /// The provider's consent page for `state`, sending the browser back to `redirect_uri`;
    /// `None` when the provider is not configured.
    fn authorize_url(&self, redirect_uri: &str, state: &str) -> Option<String>;

    /// Exchanges the code of the consent page's redirect for the account and its tokens. The
    /// error is a sentence for the person connecting.
    async fn connect(&self, redirect_uri: &str, code: &str) -> Result<ConnectedAccount, String>;

    /// Whether the flow uses PKCE (RFC 7636, `S256`): the routes then make a [`Pkce`] per
    /// flow, keep its verifier with the state, and call the `_pkce` methods below.
    fn uses_pkce(&self) -> bool {
        false
    }

    /// [`OAuthProvider::authorize_url`] with the PKCE `code_challenge`.
    fn authorize_url_pkce(
        &self,
        redirect_uri: &str,
        state: &str,
        _code_challenge: &str,
    ) -> Option<String> {
        self.authorize_url(redirect_uri, state)
    }

    /// [`OAuthProvider::connect`] with the PKCE `code_verifier` of the flow.
    async fn connect_pkce(
        &self,
        redirect_uri: &str,
        code: &str,
        _code_verifier: &str,
    ) -> Result<ConnectedAccount, String> {
        self.connect(redirect_uri, code).await
    }
}

/// A PKCE pair (RFC 7636): a random verifier kept by Ferry, and its `S256` challenge sent on
/// the consent page's URL.
#[derive(Clone)]
pub struct Pkce {
    /// 43 characters of base64url from 32 random bytes; secret until the code exchange.
    pub verifier: String,
    /// `BASE64URL(SHA256(verifier))`.
    pub challenge: String,
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce")
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

impl Pkce {
    /// A new pair; `None` when the system has no randomness.
    pub fn generate() -> Option<Pkce> {
        use base64::Engine;
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).ok()?;
        let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        Some(Pkce {
            challenge: Pkce::challenge_of(&verifier),
            verifier,
        })
    }

    /// The `S256` challenge of a verifier.
    pub fn challenge_of(verifier: &str) -> String {
        use base64::Engine;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
    }
}

/// The JSON Schema of `T`, every subschema inlined so the result stands alone (it is embedded
/// in the OpenAPI document, where `#/$defs/…` would not resolve).
pub fn schema_of<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut schema = serde_json::to_value(generator.into_root_schema_for::<T>())
        .expect("a JSON Schema serializes");
    if let Some(map) = schema.as_object_mut() {
        map.remove("$schema");
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config.
    #[derive(serde::Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        /// Where it goes.
        host: String,
        /// Nested.
        inner: Inner,
    }

    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Inner {
        /// Port.
        #[serde(default)]
        port: u16,
    }

    #[test]
    fn pkce_challenges_follow_rfc_7636() {
        // RFC 7636, appendix B.
        assert_eq!(
            Pkce::challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pkce::generate().unwrap();
        assert_eq!(p.verifier.len(), 43);
        assert_eq!(p.challenge, Pkce::challenge_of(&p.verifier));
        assert_ne!(p.verifier, Pkce::generate().unwrap().verifier);
    }

    #[test]
    fn schemas_stand_alone_with_doc_comments_as_descriptions() {
        let s = schema_of::<Cfg>();
        assert_eq!(s["properties"]["host"]["description"], "Where it goes.");
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(
            s["properties"]["inner"]["properties"]["port"]["description"],
            "Port."
        );
        let text = s.to_string();
        assert!(!text.contains("$ref") && !text.contains("$defs"), "{text}");
    }
}
