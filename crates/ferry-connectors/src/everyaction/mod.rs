//! EveryAction data sync (seed 004), `type: "everyaction"`: Configure Integration (login, API
//! key as the Password secret, API host, Liberal sync, notes), Edit Field Mappings with
//! Required?, Test Connection through the API key profile, the nightly pull of every record
//! changed in EveryAction in the last 48 hours through a changed-entity export job
//! ([`pull`]), and the push of new opt-ins and opt-outs every five minutes during the day
//! ([`push`]), with the VAN ID kept as the Constituent ID.
//!
//! A run pushes first, then pulls when the pull is due; scheduled runs push only in the push
//! window and pull once a night in the nightly window, Run now does both. The pull's own writes
//! are not pushed back: the push's watermark moves past them when nothing else changed contacts
//! meanwhile (otherwise a pulled status may be sent back once, which changes nothing in
//! EveryAction).
//!
//! A new opted-in contact the pull creates gets the welcome message of the instance's opt-in
//! path queued in the outbox. A contact EveryAction refuses in a push is tried again on the
//! next pushes, up to [`push::MAX_ATTEMPTS`] attempts. Each run's synchronization report
//! ([`Connector::sync_report`]) is read from its detail.

pub mod client;
pub mod config;
pub mod pull;
pub mod push;

use async_trait::async_trait;
use ferry_core::run::Trigger;
use ferry_core::schedule::Schedule;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use client::{Client, EaError, Limits};
pub use config::EveryActionConfig;

use crate::connector::{ConfigError, ConnectionReport, Connector, RunError, RunReport};
use crate::context::{ConnectorContext, RunContext, Secrets};
use crate::describe::{Category, Description, Platform, SecretField, SecretKind, schema_of};
use crate::explain::SyncReport;

/// EveryAction's card on Browse Available.
pub const PLATFORM: Platform = Platform {
    id: "everyaction",
    name: "EveryAction",
    summary: "Data sync with EveryAction (NGP VAN): every night Ferry pulls the records changed in EveryAction in the last 48 hours, matched by mobile phone, with the VAN ID kept as the Constituent ID. Conservative sync takes only records opted in in EveryAction; Liberal sync takes them whatever their opt-in status.",
    page: None,
};

/// What the Sync Log and run errors of this kind can say.
pub const ERROR_CODES: &[ferry_core::errors::ErrorCode] = ferry_core::error_codes! {
    "everyaction_missing_email" => "The EveryAction record has no email; the sync needs phone, email and opt-in status.", "Add an email to the record in EveryAction; the next nightly sync takes it.";
    "everyaction_missing_opt_in" => "The EveryAction record has no opt-in status.", "Set the phone's opt-in status in EveryAction.";
    "everyaction_no_match" => "An opt-out of a contact without a VAN ID was not sent: no EveryAction record matches its first and last name with its phone (or it has no name).", "Nothing to do if the person is not in EveryAction; otherwise link them by setting the Constituent ID to their VAN ID.";
    "everyaction_no_van_id" => "A record in EveryAction's export file has no VAN ID.", "Check the identifier's API field name in Edit Field Mappings (VanID by default).";
    "everyaction_not_us" => "The EveryAction record's country is not US; only US records sync.", "Nothing to do if the person is outside the US; otherwise correct the country in EveryAction.";
    "everyaction_not_us_mobile" => "The EveryAction record has no US mobile number (the phone is missing, not a valid US number, or not a cell phone).", "Add the person's mobile number in EveryAction, marked as a cell phone.";
    "everyaction_opt_in_without_email" => "A new opt-in without a VAN ID was not added to EveryAction: new records need an email.", "Add the contact's email; the next change of its opt-in status sends it.";
    "everyaction_gave_up" => "EveryAction refused the contact's opt-in status on 5 pushes in a row, so Ferry stopped trying.", "Read EveryAction's last answer in the message and correct the record (in Ferry or EveryAction); the status is sent again when it next changes.";
    "everyaction_refused" => "EveryAction refused the opt-in status update for the contact (or did not answer); it is tried again on the next pushes, up to 5 attempts.", "Read the message for EveryAction's reason (for example a phone number it does not accept); nothing to do if the next push takes it.";
    "everyaction_required_field_empty" => "A field marked Required? in Edit Field Mappings is empty in the EveryAction record.", "Fill the field in EveryAction, or clear Required? for it.";
    "everyaction_not_opted_in" => "Conservative sync (Liberal sync off) leaves out EveryAction records whose opt-in status is not Opt-In; counted in the synchronization report only.", "Nothing to do, or turn Liberal sync on to take records whatever their opt-in status.";
    "everyaction_test_user" => "The EveryAction record is a Ferry test user (by phone or Constituent ID): test users never sync; counted in the synchronization report only.", "Nothing to do; clear the contact's test-user mark in Ferry if it should sync.";
    "everyaction_unknown_opt_in" => "The record's opt-in status is not one EveryAction lists for the field.", "Check the opt-in status's API field name in Edit Field Mappings (PhoneOptInStatus by default).";
    "everyaction_van_id_not_written" => "The VAN ID EveryAction gave could not be stored as the contact's Constituent ID: another contact has it, or the field holds another ID.", "Find the contacts with that Constituent ID and correct or clear (UNSET) the wrong one.";
};

/// The synchronization report of a run (seed 004's "Synchronization report"), from the run's
/// detail: the pull's half (pulled, created and updated in Ferry), the push's half (opt-ins
/// and opt-outs pushed, records made in EveryAction, retries), the records skipped by reason
/// across both, and the errors. A part that did not run counts zero.
pub fn sync_report(detail: &Value) -> SyncReport {
    let pull = &detail["pull"];
    let push = &detail["push"];
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    let mut skipped: std::collections::BTreeMap<String, i64> = Default::default();
    for part in [pull, push] {
        if let Some(m) = part["skipped"].as_object() {
            for (reason, v) in m {
                *skipped.entry(reason.clone()).or_default() += n(v);
            }
        }
    }
    let mut r = SyncReport::default();
    r.push("pulled", "Pulled from EveryAction", n(&pull["pulled"]));
    r.push("created", "Created in Ferry", n(&pull["created"]));
    r.push("updated", "Updated in Ferry", n(&pull["updated"]));
    r.push(
        "unchanged",
        "Matched, nothing to change",
        n(&pull["unchanged"]),
    );
    r.push_skipped("Skipped", &skipped);
    r.push(
        "opt_ins_pushed",
        "Opt-ins pushed",
        n(&push["opt_ins_pushed"]),
    );
    r.push(
        "opt_outs_pushed",
        "Opt-outs pushed",
        n(&push["opt_outs_pushed"]),
    );
    r.push(
        "created_in_everyaction",
        "Created in EveryAction",
        n(&push["created_in_everyaction"]),
    );
    r.push(
        "van_ids_written",
        "Constituent IDs written",
        n(&push["van_ids_written"]),
    );
    r.push(
        "welcome_messages_queued",
        "Welcome messages queued",
        n(&pull["welcome_messages_queued"]),
    );
    r.push(
        "retried",
        "Retried from earlier pushes",
        n(&push["retried"]),
    );
    r.push("given_up", "Given up after 5 attempts", n(&push["gave_up"]));
    r.push("errors", "Errors", n(&pull["errors"]) + n(&push["errors"]));
    r.summary = r.summarize(&[
        ("pulled", "Pulled"),
        ("created", "Created"),
        ("updated", "Updated"),
        ("skipped", "Skipped"),
        ("opt_ins_pushed", "Opt-ins pushed"),
        ("opt_outs_pushed", "Opt-outs pushed"),
        ("errors", "Errors"),
    ]);
    r
}

/// The state an instance keeps between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EveryActionState {
    /// The local date (institution's zone) of the last nightly pull, `YYYY-MM-DD`.
    #[serde(default)]
    pub last_pull_day: Option<String>,
    /// Where the push stands.
    #[serde(default)]
    pub push: push::PushState,
}

/// The EveryAction connector.
#[derive(Debug, Clone, Default)]
pub struct EveryAction {
    limits: Limits,
}

impl EveryAction {
    /// A connector using EveryAction as `limits` say.
    pub fn new(limits: Limits) -> EveryAction {
        EveryAction { limits }
    }

    fn client(&self, cfg: &EveryActionConfig, secrets: &Secrets) -> Result<Client, RunError> {
        let key = secrets
            .expose("password")
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                RunError::fatal("no EveryAction API key is set; enter it as the Password")
            })?;
        let limits = Limits {
            per_second: usize::try_from(cfg.requests_per_second).unwrap_or(usize::MAX),
            ..self.limits.clone()
        };
        Ok(Client::new(
            &cfg.base_url(),
            &cfg.login,
            SecretString::from(key.to_string()),
            limits,
        ))
    }

    fn config(config: &Value) -> Result<EveryActionConfig, RunError> {
        EveryActionConfig::parse(config)
            .map_err(|e| RunError::fatal(format!("the instance's settings are invalid: {e}")))
    }
}

#[async_trait]
impl Connector for EveryAction {
    fn kind(&self) -> &'static str {
        "everyaction"
    }

    fn label(&self) -> &'static str {
        "EveryAction"
    }

    fn validate_config(&self, config: &Value) -> Result<(), ConfigError> {
        EveryActionConfig::parse(config).map(|_| ())
    }

    /// Checked every 5 minutes; a scheduled run pulls once per night, in the nightly window.
    fn schedule(&self, config: &Value) -> Option<Schedule> {
        EveryActionConfig::parse(config)
            .ok()
            .map(|_| Schedule::EveryMinutes(5))
    }

    fn describe(&self) -> Description {
        Description {
            kind: self.kind(),
            label: self.label(),
            title: self.label(),
            summary: "Pulls every record changed in EveryAction in the last 48 hours each night (2–5 am by default), matched by mobile phone, keeping the VAN ID as the Constituent ID; conservative or liberal by opt-in status.",
            category: Category::CrmSync,
            platform: PLATFORM,
            config_schema: schema_of::<EveryActionConfig>(),
            secrets: vec![SecretField {
                name: "password",
                label: "Password (API key)",
                kind: SecretKind::Password,
                help: "The EveryAction API key of the Login. Ferry sends it as KEY|1 (EveryAction mode); enter the key alone.",
            }],
            // Every field with its default, as the form shows it and posts it back.
            default_config: {
                let start = json!({
                    "login": "",
                    "api_host": config::DEFAULT_API_HOST,
                    "liberal": false,
                    "notes": "",
                    "field_mappings": config::default_field_mappings(),
                });
                serde_json::from_value::<EveryActionConfig>(start.clone())
                    .ok()
                    .and_then(|c| serde_json::to_value(c).ok())
                    .unwrap_or(start)
            },
            error_codes: ERROR_CODES.to_vec(),
            oauth_provider: None,
        }
    }

    fn sync_report(&self, detail: &Value) -> Option<SyncReport> {
        Some(sync_report(detail))
    }

    fn validate_secrets(&self, _config: &Value, secrets: &Secrets) -> Result<(), ConfigError> {
        if secrets.get("password").is_some() {
            Ok(())
        } else {
            Err(ConfigError::new(
                "secrets.password",
                "enter the EveryAction API key as the Password",
            ))
        }
    }

    async fn test_connection(&self, ctx: &ConnectorContext) -> Result<ConnectionReport, RunError> {
        let cfg = Self::config(&ctx.config)?;
        let client = self.client(&cfg, &ctx.secrets)?;
        let p = client.api_key_profile().await.map_err(|e| {
            if e.is_refused_credentials() {
                RunError::fatal(format!(
                    "{}. EveryAction refuses a wrong API key, a key without EveryAction mode and a wrong Login alike; check both",
                    e.message
                ))
            } else if e.is_transient() {
                RunError::retryable(e.message)
            } else {
                RunError::fatal(e.message)
            }
        })?;
        let database = p.database_name.clone().unwrap_or_default();
        let user = [p.user_first_name.as_deref(), p.user_last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        Ok(ConnectionReport {
            message: format!(
                "Connected to EveryAction database {database:?} as {} ({user}).",
                p.username.clone().unwrap_or_else(|| cfg.login.clone())
            ),
            detail: json!({
                "database": database,
                "committee": p.committee_name,
                "user": user,
                "username": p.username,
            }),
        })
    }

    async fn run(&self, ctx: &RunContext) -> Result<RunReport, RunError> {
        let cfg = Self::config(ctx.config())?;
        let client = self.client(&cfg, ctx.secrets())?;
        let now = jiff::Timestamp::now();
        let zone = ctx
            .store()
            .institution(ctx.institution_id())
            .await?
            .time_zone;
        let tz = jiff::tz::TimeZone::get(&zone).unwrap_or(jiff::tz::TimeZone::UTC);
        let local = now.to_zoned(tz);
        let today = local.date().to_string();
        let mut state: EveryActionState = ctx.state();
        let hour = u8::try_from(local.hour()).unwrap_or(0);
        let scheduled = ctx.run().trigger == Trigger::Scheduled;
        let do_push = !scheduled || cfg.push_window.contains(hour);
        let do_pull = !scheduled
            || (cfg.nightly_window.contains(hour)
                && state.last_pull_day.as_deref() != Some(today.as_str()));
        if !do_push && !do_pull {
            return Ok(RunReport::skipped());
        }
        let mut detail = json!({});
        let mut rows = 0u64;
        if do_push {
            let pushed =
                push::push(ctx, &client, &cfg, &mut state.push, now.as_millisecond()).await;
            // Saved even when the push stopped: it says which contacts were sent and which
            // wait for the next push.
            ctx.save_state(&state).await?;
            let pushed = pushed?;
            rows += pushed.opt_ins + pushed.opt_outs;
            detail["push"] = pushed.detail();
        }
        if do_pull {
            let store = ctx.store();
            let before = store.current_change_seq(ctx.institution_id()).await?;
            let tally = pull::pull(ctx, &client, &cfg, now).await?;
            let after = store.current_change_seq(ctx.institution_id()).await?;
            // Echo suppression: when the pull's writes are the only changes since `before`, the
            // push skips them.
            if let Some(w) = state.push.watermark
                && w >= before
                && u64::try_from(after - before).ok() == Some(tally.created + tally.updated)
            {
                state.push.watermark = Some(after);
            }
            state.last_pull_day = Some(today);
            ctx.save_state(&state).await?;
            rows += tally.pulled;
            detail["pull"] = tally.detail();
        }
        let calls = client.calls();
        detail["requests"] = json!(calls.requests);
        detail["rate_limited"] = json!(calls.rate_limited);
        Ok(RunReport::success(i64::try_from(rows).unwrap_or(i64::MAX)).with_detail(detail))
    }
}
