//! The nightly pull: every record changed in EveryAction in the last 48 hours (not by Ferry's
//! own API user), through a Contacts changed-entity export job, applied with seed 001's
//! matching and UNSET and blank rules under seed 004's rules (US mobile numbers only; phone,
//! email and opt-in status required; conservative or liberal; Required? fields).

use std::collections::{BTreeMap, HashMap};

use ferry_core::contact::{ContactWrite, Patch, Raw, SmsOptIn};
use ferry_core::phone::Phone;
use ferry_core::run::SyncDirection;
use ferry_store::{AppliedAction, WriteKind};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::client::{Client, EaError};
use super::config::{EaField, EveryActionConfig};
use crate::connector::RunError;
use crate::context::RunContext;

/// How far back the nightly pull reads (seed 004: "updates … within the past 48 hours").
pub const PULL_WINDOW: SignedDuration = SignedDuration::from_hours(48);

/// Contacts written to the store at once (the next chunk is read meanwhile).
const CHUNK: usize = 10_000;

/// What a pull did: the synchronization report's incoming half.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PullTally {
    /// Records in the export files.
    pub pulled: u64,
    /// New Ferry contacts.
    pub created: u64,
    /// Ferry contacts changed.
    pub updated: u64,
    /// Matched, nothing to change.
    pub unchanged: u64,
    /// Records left out, by reason (an error dictionary code).
    pub skipped: BTreeMap<String, u64>,
    /// Records Ferry refused (a bad value, a matching conflict), each with a Sync Log row.
    pub errors: u64,
    /// Export files read.
    pub files: u64,
    /// Welcome messages queued for new opted-in contacts (the instance's opt-in path).
    pub welcomed: u64,
    /// Whether the instance's opt-in path turned out not to exist (said once in the Sync Log).
    pub welcome_path_missing: bool,
}

impl PullTally {
    /// The report's detail.
    pub fn detail(&self) -> Value {
        json!({
            "pulled": self.pulled,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "errors": self.errors,
            "export_files": self.files,
            "welcome_messages_queued": self.welcomed,
        })
    }

    fn skip(&mut self, reason: &str) {
        *self.skipped.entry(reason.to_string()).or_default() += 1;
    }
}

fn remote(e: EaError) -> RunError {
    if e.is_transient() {
        RunError::retryable(e.message)
    } else if e.is_refused_credentials() {
        RunError::fatal(format!(
            "{}; check the Login and the API key (Ferry sends it as KEY|1, EveryAction mode)",
            e.message
        ))
    } else {
        RunError::fatal(e.message)
    }
}

/// An opt-in status name as VAN writes it (`Opt-In`, `Opt-Out`, `Unknown`).
fn status_of_name(name: &str) -> Option<SmsOptIn> {
    let n: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    match n.as_str() {
        "optin" | "optedin" => Some(SmsOptIn::OptedIn),
        "optout" | "optedout" => Some(SmsOptIn::OptedOut),
        "unknown" => Some(SmsOptIn::Unknown),
        _ => None,
    }
}

fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    }
}

fn is_us(country: &str) -> bool {
    matches!(
        country.trim().to_ascii_lowercase().as_str(),
        "us" | "usa" | "united states" | "united states of america"
    )
}

/// Runs the pull as of `now`.
pub async fn pull(
    ctx: &RunContext,
    client: &Client,
    cfg: &EveryActionConfig,
    now: Timestamp,
) -> Result<PullTally, RunError> {
    let fields = client.contact_fields().await.map_err(remote)?;
    let find = |name: &str| {
        fields
            .iter()
            .find(|f| f.field_name.eq_ignore_ascii_case(name.trim()))
    };
    for row in &cfg.field_mappings {
        if find(&row.api_field).is_none() {
            return Err(RunError::fatal(format!(
                "EveryAction's Contacts have no field {:?} (mapped to {}); correct the field mapping",
                row.api_field,
                row.field.ferry_field().unwrap_or("the identifier")
            )));
        }
    }
    let opt_field = cfg.api_field(EaField::OptIn).unwrap_or_default();
    // The statuses' codes in the files: resolved by name, never assumed.
    let opt_codes: HashMap<String, SmsOptIn> = find(opt_field)
        .and_then(|f| f.available_values.as_ref())
        .map(|vals| {
            vals.iter()
                .filter_map(|v| Some((id_text(&v.id), status_of_name(&v.name)?)))
                .collect()
        })
        .unwrap_or_default();
    let mobile_field = cfg.mobile_field.trim();
    let mobile_field =
        (!mobile_field.is_empty() && find(mobile_field).is_some()).then_some(mobile_field);
    let mut requested: Vec<String> = Vec::new();
    for name in cfg
        .field_mappings
        .iter()
        .map(|r| r.api_field.trim())
        .chain(mobile_field)
    {
        let core = find(name).is_some_and(|f| f.is_core_field);
        if !core && !requested.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            requested.push(name.to_string());
        }
    }

    let job = client
        .create_export_job(now - PULL_WINDOW, &requested)
        .await
        .map_err(remote)?;
    let urls = client.wait_for_export(job).await.map_err(remote)?;

    let schema = ctx.store().field_schema(ctx.institution_id()).await?;
    let test_users = ctx.store().test_user_keys(ctx.institution_id()).await?;
    let constituent = cfg.constituent_id_field.trim();
    let constituent_ref = schema.resolve(constituent).ok_or_else(|| {
        RunError::fatal(format!(
            "the Constituent ID field {constituent:?} is not a contact field; name crm_id or a custom field"
        ))
    })?;
    // Each mapped field resolved once: (Ferry field, its name, the API column).
    let mut targets: Vec<(ferry_core::contact::FieldRef, &str, &str)> = Vec::new();
    for row in &cfg.field_mappings {
        match row.field {
            EaField::OptIn | EaField::Phone => {}
            EaField::Identifier => {
                targets.push((constituent_ref.clone(), constituent, row.api_field.trim()))
            }
            f => {
                if let Some(name) = f.ferry_field()
                    && let Some(r) = schema.resolve(name)
                {
                    targets.push((r, name, row.api_field.trim()));
                }
            }
        }
    }
    let id_api = cfg.api_field(EaField::Identifier).unwrap_or_default();
    let mut tally = PullTally::default();
    let mut cols: Option<HashMap<String, usize>> = None;
    let mut writes: Vec<ContactWrite> = Vec::new();
    let mut writing: Option<Writing> = None;
    for url in &urls {
        let body = client.download(url).await.map_err(remote)?;
        tally.files += 1;
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(body.as_bytes());
        let mut first = true;
        let mut rec = csv::StringRecord::new();
        loop {
            let more = rdr.read_record(&mut rec).map_err(|e| {
                RunError::retryable(format!("an EveryAction export file could not be read: {e}"))
            })?;
            if !more {
                break;
            }
            // Files after the first may or may not repeat the header (the sources disagree).
            if first {
                first = false;
                let looks_like_header = rec.iter().any(|c| c.eq_ignore_ascii_case(id_api));
                if looks_like_header || cols.is_none() {
                    // The columns of the mapped fields (and the mobile column), by API name.
                    let mut map = HashMap::new();
                    for name in cfg
                        .field_mappings
                        .iter()
                        .map(|r| r.api_field.trim())
                        .chain(mobile_field)
                    {
                        if let Some(i) = rec.iter().position(|c| c.eq_ignore_ascii_case(name)) {
                            map.insert(name.to_string(), i);
                        }
                    }
                    cols = Some(map);
                    continue;
                }
            }
            let Some(cols) = cols.as_ref() else { continue };
            tally.pulled += 1;
            let get = |name: &str| -> &str {
                cols.get(name.trim())
                    .and_then(|&i| rec.get(i))
                    .map_or("", str::trim)
            };
            let van_id = get(id_api);
            match decide(cfg, &get, mobile_field, &opt_codes) {
                Ok((status, phone)) => {
                    if test_users.phones.contains(phone.as_str())
                        || (constituent == "crm_id" && test_users.crm_ids.contains(van_id))
                    {
                        tally.skip("everyaction_test_user");
                        continue;
                    }
                    let mut w = ContactWrite::default();
                    let mut bad = None;
                    for (field, name, api) in &targets {
                        if let Err(e) = w.patch.set_raw(field, name, Raw::Str(get(api))) {
                            bad = Some(e);
                            break;
                        }
                    }
                    match bad {
                        None => {
                            w.patch.sms_opt_in = Patch::Set(status);
                            w.patch.phone = Patch::Set(phone);
                            writes.push(w);
                        }
                        Some(e) => {
                            tally.errors += 1;
                            ctx.log(
                                None,
                                SyncDirection::Incoming,
                                e.code,
                                format!("EveryAction record {van_id}: {}: {}", e.field, e.message),
                            )
                            .await?;
                        }
                    }
                }
                Err(Skip { code, message }) => {
                    tally.skip(code);
                    if let Some(m) = message {
                        ctx.log(
                            None,
                            SyncDirection::Incoming,
                            code,
                            format!("EveryAction record {van_id}: {m}"),
                        )
                        .await?;
                    }
                }
            }
            if writes.len() >= CHUNK {
                apply(ctx, &mut writes, &mut writing, &mut tally).await?;
            }
        }
        if ctx.is_cancelled() {
            return Err(RunError::cancelled());
        }
    }
    apply(ctx, &mut writes, &mut writing, &mut tally).await?;
    finish(ctx, &mut writing, &mut tally).await?;
    Ok(tally)
}

/// A chunk being written while the next one is read, with which of its writes make the
/// contact opted in (a new one of those is welcomed).
type Writing = (
    tokio::task::JoinHandle<Result<Vec<ferry_store::WriteOutcome>, ferry_store::StoreError>>,
    Vec<bool>,
);

/// Starts writing `writes` (after the chunk before it is done, so contacts are written in the
/// files' order), and counts the chunk before.
async fn apply(
    ctx: &RunContext,
    writes: &mut Vec<ContactWrite>,
    writing: &mut Option<Writing>,
    tally: &mut PullTally,
) -> Result<(), RunError> {
    finish(ctx, writing, tally).await?;
    if writes.is_empty() {
        return Ok(());
    }
    let store = ctx.store().clone();
    let inst = ctx.institution_id();
    let chunk = std::mem::take(writes);
    let opted_in = chunk
        .iter()
        .map(|w| w.patch.sms_opt_in.as_set() == Some(&SmsOptIn::OptedIn))
        .collect();
    let task = tokio::spawn(async move {
        store
            .apply_contact_writes(inst, &chunk, WriteKind::Import)
            .await
    });
    *writing = Some((task, opted_in));
    Ok(())
}

/// Waits for the chunk being written and counts it.
async fn finish(
    ctx: &RunContext,
    writing: &mut Option<Writing>,
    tally: &mut PullTally,
) -> Result<(), RunError> {
    let Some((task, opted_in)) = writing.take() else {
        return Ok(());
    };
    let out = task
        .await
        .map_err(|e| RunError::retryable(format!("writing contacts failed: {e}")))??;
    for (o, opted_in) in out.into_iter().zip(opted_in) {
        match o {
            Ok(a) => match a.action {
                AppliedAction::Created => {
                    tally.created += 1;
                    if opted_in {
                        welcome(ctx, a.contact_id, tally).await?;
                    }
                }
                AppliedAction::Updated => tally.updated += 1,
                AppliedAction::Unchanged => tally.unchanged += 1,
            },
            Err(e) => {
                tally.errors += 1;
                ctx.log(e.contact_id, SyncDirection::Incoming, e.code, e.message)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Queues the instance's welcome message (its opt-in path's) for a contact the pull created
/// opted in. Queued at most once per contact and path, so a retried run queues nothing twice.
/// A path that no longer exists is said once per run in the Sync Log.
async fn welcome(ctx: &RunContext, contact_id: i64, tally: &mut PullTally) -> Result<(), RunError> {
    let Some(path) = ctx
        .config()
        .get("opt_in_path_id")
        .and_then(serde_json::Value::as_i64)
    else {
        return Ok(());
    };
    if tally.welcome_path_missing {
        return Ok(());
    }
    match ctx
        .store()
        .queue_welcome(
            ctx.institution_id(),
            contact_id,
            path,
            Some(ctx.integration().id),
        )
        .await
    {
        Ok(Some(_)) => tally.welcomed += 1,
        Ok(None) => {}
        Err(ferry_store::StoreError::Invalid { field, .. }) if field == "opt_in_path_id" => {
            tally.welcome_path_missing = true;
            ctx.log(
                Some(contact_id),
                SyncDirection::Incoming,
                "opt_in_path_missing",
                format!(
                    "the opt-in path {path} set for new users no longer exists, so no welcome \
                     message was queued for the contacts this run created"
                ),
            )
            .await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Why a record is left out: a code, and a message when it deserves a Sync Log row.
struct Skip {
    code: &'static str,
    message: Option<String>,
}

fn skip(code: &'static str, message: impl Into<String>) -> Skip {
    Skip {
        code,
        message: Some(message.into()),
    }
}

/// The opt-in status and the phone of one exported record, or why it does not sync.
fn decide<'a>(
    cfg: &EveryActionConfig,
    get: &dyn Fn(&str) -> &'a str,
    mobile_field: Option<&str>,
    opt_codes: &HashMap<String, SmsOptIn>,
) -> Result<(SmsOptIn, Phone), Skip> {
    let field = |f: EaField| get(cfg.api_field(f).unwrap_or_default());
    let van_id = field(EaField::Identifier);
    if van_id.is_empty() {
        return Err(skip("everyaction_no_van_id", "the record has no VAN ID"));
    }
    let country = field(EaField::Country);
    if !is_us(country) {
        return Err(skip(
            "everyaction_not_us",
            format!("the country is {country:?}, not US: only US records sync"),
        ));
    }
    let phone = field(EaField::Phone);
    let mobile = mobile_field.is_none_or(|m| get(m).eq_ignore_ascii_case("cell"));
    let phone = match Phone::parse(phone) {
        Ok(p) if p.as_str().starts_with("+1") && mobile => p,
        _ => {
            return Err(skip(
                "everyaction_not_us_mobile",
                format!(
                    "{phone:?} is not a US mobile number: only records with a listed mobile number sync"
                ),
            ));
        }
    };
    if field(EaField::Email).is_empty() {
        return Err(skip("everyaction_missing_email", "the record has no email"));
    }
    let code = field(EaField::OptIn);
    if code.is_empty() {
        return Err(skip(
            "everyaction_missing_opt_in",
            "the record has no opt-in status",
        ));
    }
    let Some(status) = opt_codes
        .get(code)
        .copied()
        .or_else(|| status_of_name(code))
    else {
        return Err(skip(
            "everyaction_unknown_opt_in",
            format!("the opt-in status {code:?} is not one EveryAction lists for the field"),
        ));
    };
    if !cfg.liberal && status != SmsOptIn::OptedIn {
        // Conservative sync: only records opted in in EveryAction are updated (counted only).
        return Err(Skip {
            code: "everyaction_not_opted_in",
            message: None,
        });
    }
    for row in cfg.field_mappings.iter().filter(|r| r.required) {
        if get(&row.api_field).is_empty() {
            return Err(skip(
                "everyaction_required_field_empty",
                format!("{} is required and empty", row.api_field.trim()),
            ));
        }
    }
    Ok((status, phone))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names() {
        assert_eq!(status_of_name("Opt-In"), Some(SmsOptIn::OptedIn));
        assert_eq!(status_of_name("Opt-Out"), Some(SmsOptIn::OptedOut));
        assert_eq!(status_of_name("Unknown"), Some(SmsOptIn::Unknown));
        assert_eq!(status_of_name("Maybe"), None);
    }
}
