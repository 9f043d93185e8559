//! The nightly pull: every record changed in EveryAction in the last 48 hours (not by Ferry's
//! own API user), through a Contacts changed-entity export job, applied with seed 001's
//! matching and UNSET and blank rules under seed 004's rules (US mobile numbers only; phone,
//! email and opt-in status required; conservative or liberal; Required? fields).

use std::collections::{BTreeMap, HashMap};

use ferry_core::contact::{ContactWrite, Patch, Raw, SmsOptIn};
use ferry_core::phone::Phone;
use ferry_core::run::{SyncDirection, SyncResult};
use ferry_store::{AppliedAction, WriteKind};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::client::{Client, EaError};
use super::config::{EaField, EveryActionConfig};
use crate::connector::RunError;
use crate::context::RunContext;

/// How far back the nightly pull reads (seed 004: "updates … within the past 48 hours").
pub const PULL_WINDOW: SignedDuration = SignedDuration::from_hours(48);

/// Records written to the store at once (the next chunk is parsed meanwhile, on its own
/// thread).
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
    let constituent = cfg.constituent_id_field.trim().to_string();
    let constituent_ref = schema.resolve(&constituent).ok_or_else(|| {
        RunError::fatal(format!(
            "the Constituent ID field {constituent:?} is not a contact field; name crm_id or a custom field"
        ))
    })?;
    // Each mapped field resolved once: (Ferry field, its name, the API column).
    let mut targets: Vec<(ferry_core::contact::FieldRef, String, String)> = Vec::new();
    for row in &cfg.field_mappings {
        match row.field {
            EaField::OptIn | EaField::Phone => {}
            EaField::Identifier => targets.push((
                constituent_ref.clone(),
                constituent.clone(),
                row.api_field.trim().to_string(),
            )),
            f => {
                if let Some(name) = f.ferry_field()
                    && let Some(r) = schema.resolve(name)
                {
                    targets.push((r, name.to_string(), row.api_field.trim().to_string()));
                }
            }
        }
    }
    let mut parser = Parser {
        cfg: cfg.clone(),
        id_api: cfg
            .api_field(EaField::Identifier)
            .unwrap_or_default()
            .to_string(),
        mobile_field: mobile_field.map(str::to_string),
        opt_codes,
        targets,
        test_users,
        constituent,
        cols: None,
    };

    // The files are read and parsed on a blocking thread, chunk by chunk, while the chunks
    // before are written (as the CSV import does): parsing on the runtime would hold up the
    // writes it hands over.
    let mut tally = PullTally::default();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Record>>(4);
    let read = async move {
        for url in &urls {
            let body = client.download(url).await.map_err(remote)?;
            let tx = tx.clone();
            parser = tokio::task::spawn_blocking(move || parser.parse(&body, &tx).map(|()| parser))
                .await
                .map_err(|e| {
                    RunError::retryable(format!("reading an export file failed: {e}"))
                })??;
        }
        Ok::<u64, RunError>(urls.len() as u64)
    };
    let write = async {
        while let Some(chunk) = rx.recv().await {
            if ctx.is_cancelled() {
                return Err(RunError::cancelled());
            }
            apply(ctx, chunk, &mut tally).await?;
        }
        Ok::<(), RunError>(())
    };
    let (files, ()) = tokio::try_join!(read, write)?;
    tally.files = files;
    Ok(tally)
}

/// Records parsed at once: the writer writes one chunk while the next is parsed.
const PARSE_CHUNK: usize = CHUNK;

/// One record of an export file, as the parser leaves it for the writer. Nearly every record
/// is a write, so the writes are not boxed (an allocation per record for nothing).
#[allow(clippy::large_enum_variant)]
enum Record {
    /// A contact write, whether it makes the contact opted in (a new one is welcomed), and
    /// the record's VAN ID.
    Write(ContactWrite, bool, String),
    /// Left out: its reason, and the Sync Log message when it deserves one.
    Skip(&'static str, Option<String>),
    /// A value Ferry refuses: the code and the Sync Log message.
    Invalid(&'static str, String),
}

/// What parsing needs, owned, so that it runs on a blocking thread.
struct Parser {
    cfg: EveryActionConfig,
    id_api: String,
    mobile_field: Option<String>,
    opt_codes: HashMap<String, SmsOptIn>,
    targets: Vec<(ferry_core::contact::FieldRef, String, String)>,
    test_users: ferry_store::TestUserKeys,
    constituent: String,
    /// The columns of the mapped fields (and the mobile column), by API name: from the first
    /// file's header, kept for files that do not repeat it.
    cols: Option<HashMap<String, usize>>,
}

impl Parser {
    /// Parses one export file, sending its records down `tx` in chunks of [`PARSE_CHUNK`].
    fn parse(
        &mut self,
        body: &str,
        tx: &tokio::sync::mpsc::Sender<Vec<Record>>,
    ) -> Result<(), RunError> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(body.as_bytes());
        let mut first = true;
        let mut rec = csv::StringRecord::new();
        let mut chunk = Vec::with_capacity(PARSE_CHUNK);
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
                let looks_like_header = rec.iter().any(|c| c.eq_ignore_ascii_case(&self.id_api));
                if looks_like_header || self.cols.is_none() {
                    let mut map = HashMap::new();
                    for name in self
                        .cfg
                        .field_mappings
                        .iter()
                        .map(|r| r.api_field.trim())
                        .chain(self.mobile_field.as_deref())
                    {
                        if let Some(i) = rec.iter().position(|c| c.eq_ignore_ascii_case(name)) {
                            map.insert(name.to_string(), i);
                        }
                    }
                    self.cols = Some(map);
                    continue;
                }
            }
            chunk.push(self.record(&rec));
            if chunk.len() >= PARSE_CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(PARSE_CHUNK));
                if tx.blocking_send(full).is_err() {
                    // The writer stopped (an error or a cancel it reports itself).
                    return Ok(());
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(chunk);
        }
        Ok(())
    }

    /// One data row.
    fn record(&self, rec: &csv::StringRecord) -> Record {
        let cols = self.cols.as_ref();
        let get = |name: &str| -> &str {
            cols.and_then(|c| c.get(name.trim()))
                .and_then(|&i| rec.get(i))
                .map_or("", str::trim)
        };
        let van_id = get(&self.id_api);
        match decide(
            &self.cfg,
            &get,
            self.mobile_field.as_deref(),
            &self.opt_codes,
        ) {
            Ok((status, phone)) => {
                if self.test_users.phones.contains(phone.as_str())
                    || (self.constituent == "crm_id" && self.test_users.crm_ids.contains(van_id))
                {
                    return Record::Skip("everyaction_test_user", None);
                }
                let mut w = ContactWrite::default();
                for (field, name, api) in &self.targets {
                    if let Err(e) = w.patch.set_raw(field, name, Raw::Str(get(api))) {
                        return Record::Invalid(
                            e.code,
                            format!("EveryAction record {van_id}: {}: {}", e.field, e.message),
                        );
                    }
                }
                w.patch.sms_opt_in = Patch::Set(status);
                w.patch.phone = Patch::Set(phone);
                Record::Write(w, status == SmsOptIn::OptedIn, van_id.to_string())
            }
            Err(Skip { code, message }) => Record::Skip(
                code,
                message.map(|m| format!("EveryAction record {van_id}: {m}")),
            ),
        }
    }
}

/// Writes a chunk of records in order, counting them and logging those left out or refused.
async fn apply(
    ctx: &RunContext,
    chunk: Vec<Record>,
    tally: &mut PullTally,
) -> Result<(), RunError> {
    let mut writes = Vec::with_capacity(chunk.len());
    let mut opted_in = Vec::with_capacity(chunk.len());
    for r in chunk {
        tally.pulled += 1;
        match r {
            Record::Write(w, o, van_id) => {
                writes.push(w);
                opted_in.push((o, van_id));
            }
            Record::Skip(code, message) => {
                tally.skip(code);
                if let Some(m) = message {
                    ctx.log(None, SyncDirection::Incoming, code, m).await?;
                }
            }
            Record::Invalid(code, message) => {
                tally.errors += 1;
                ctx.log(None, SyncDirection::Incoming, code, message)
                    .await?;
            }
        }
    }
    if writes.is_empty() {
        return Ok(());
    }
    let out = ctx
        .store()
        .apply_contact_writes(ctx.institution_id(), &writes, WriteKind::Import)
        .await?;
    for (o, (opted_in, van_id)) in out.into_iter().zip(opted_in) {
        match o {
            Ok(a) => {
                match a.action {
                    AppliedAction::Created => {
                        tally.created += 1;
                        if opted_in {
                            welcome(ctx, a.contact_id, tally).await?;
                        }
                    }
                    AppliedAction::Updated => tally.updated += 1,
                    AppliedAction::Unchanged => tally.unchanged += 1,
                }
                ctx.synced(SyncResult::synced(
                    a.contact_id,
                    SyncDirection::Incoming,
                    Some(van_id),
                ))
                .await?;
            }
            Err(e) => {
                tally.errors += 1;
                if let Some(contact) = e.contact_id {
                    ctx.synced(SyncResult::failed(
                        contact,
                        SyncDirection::Incoming,
                        e.code,
                        Some(van_id),
                    ))
                    .await?;
                }
                ctx.log(e.contact_id, SyncDirection::Incoming, e.code, e.message)
                    .await?;
            }
        }
    }
    // The chunk is through: its contacts' sync status is written.
    ctx.flush_synced().await?;
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
