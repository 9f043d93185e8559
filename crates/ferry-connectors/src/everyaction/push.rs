//! The push: Ferry contacts whose SMS opt-in status changed since the last push, sent to
//! EveryAction (seed 004, "synced to EveryAction every five minutes during the day").
//!
//! - An opt-out (or an opt-in) of a linked contact sets that phone's status by VAN ID, sending
//!   only the changed phone (VAN appends whatever it is sent).
//! - A new opt-in without a VAN ID becomes a new EveryAction record with the status true when
//!   the contact has an email, through `findOrCreate` with the name, email and phone (above VAN's
//!   match minimum, so a retry after a lost answer finds the record instead of duplicating it).
//! - An opt-out without a VAN ID is matched by first and last name with the phone; with no
//!   match there is no EveryAction record to update.
//!
//! The VAN ID learned is written back as the Constituent ID.
//!
//! A contact EveryAction refuses (a 4xx for the record, or a 5xx or timeout that outlasted the
//! client's retries) is kept in the instance's state and tried again at the start of each
//! following push, with its current status, up to [`MAX_ATTEMPTS`] attempts in all; then Ferry
//! gives up on it with a Sync Log row (`everyaction_gave_up`) until its status changes again.
//! A 5xx or timeout also ends the push there (the run is retried, EveryAction may be down);
//! a 4xx is logged and the push goes on.

use std::collections::BTreeMap;

use ferry_core::contact::{Contact, ContactWrite, FieldRef, Raw, SmsOptIn, value_text};
use ferry_core::run::{SyncDirection, SyncResult};
use ferry_store::WriteKind;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client::{Client, EaError};
use super::config::EveryActionConfig;
use crate::connector::RunError;
use crate::context::RunContext;

/// Contacts read from the change feed at once.
const PAGE: u32 = 500;

/// A contact's opt-in change is stamped when its write is prepared, a moment before it commits
/// and takes its change sequence: a push that started in between reads the sequence later
/// with a stamp from before it started. Changes stamped this long before the last push started
/// are still sent (sending a status again changes nothing in EveryAction).
const STAMP_MARGIN_MS: i64 = 10 * 60 * 1000;

/// Attempts at sending a contact EveryAction refuses, the first included, before Ferry gives
/// up on it.
pub const MAX_ATTEMPTS: u32 = 5;

/// Where the push stands, kept in the instance's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushState {
    /// The contact change sequence the push has read up to; `None` before the first push.
    pub watermark: Option<i64>,
    /// When that push started (ms): an opt-in status that changed before it was pushed then.
    pub since_ms: i64,
    /// Contacts EveryAction refused, by contact ID, tried again on the next pushes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retries: BTreeMap<i64, Retry>,
}

/// A contact waiting to be sent again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// Attempts so far (1 after the first refusal).
    pub attempts: u32,
    /// EveryAction's last answer.
    pub last_error: String,
}

/// What a push did: the synchronization report's outgoing half.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushTally {
    /// Opt-ins sent.
    pub opt_ins: u64,
    /// Opt-outs sent.
    pub opt_outs: u64,
    /// New EveryAction records made for new opt-ins.
    pub created: u64,
    /// VAN IDs written back as Constituent IDs.
    pub linked: u64,
    /// Contacts left out, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Contacts EveryAction refused, each with a Sync Log row.
    pub errors: u64,
    /// Contacts refused by an earlier push that this push sent again.
    pub retried: u64,
    /// Of those, the ones EveryAction took this time (the others were refused again, or are
    /// left out now for a reason logged).
    pub retried_ok: u64,
    /// Contacts given up after [`MAX_ATTEMPTS`] refusals.
    pub gave_up: u64,
    /// Contacts waiting to be sent again after this push.
    pub retry_pending: u64,
}

impl PushTally {
    /// The report's detail.
    pub fn detail(&self) -> Value {
        json!({
            "opt_ins_pushed": self.opt_ins,
            "opt_outs_pushed": self.opt_outs,
            "created_in_everyaction": self.created,
            "van_ids_written": self.linked,
            "skipped": self.skipped,
            "errors": self.errors,
            "retried": self.retried,
            "retried_ok": self.retried_ok,
            "gave_up": self.gave_up,
            "retry_pending": self.retry_pending,
        })
    }

    fn skip(&mut self, reason: &str) {
        *self.skipped.entry(reason.to_string()).or_default() += 1;
    }
}

fn constituent_ref(cfg: &EveryActionConfig, schema: &ferry_core::contact::FieldSchema) -> FieldRef {
    schema
        .resolve(cfg.constituent_id_field.trim())
        .unwrap_or(FieldRef::Default(ferry_core::contact::DefaultField::CrmId))
}

/// How one contact's push ended.
enum Outcome {
    /// Sent, to the record with this VAN ID.
    Done { van_id: String },
    /// Left out for a reason logged with this code (nothing to retry).
    Skipped { code: &'static str },
    /// EveryAction refused it; `transient` for a 5xx or timeout after the client's retries.
    Refused { message: String, transient: bool },
}

/// Pushes the opt-in changes since `state`, moving `state` along; `now_ms` is this push's
/// start. The contacts refused before go first. The first push only starts the watermark:
/// opt-ins from before activation are not new. `state` says what was done even when this
/// returns an error, and is to be saved then too.
pub async fn push(
    ctx: &RunContext,
    client: &Client,
    cfg: &EveryActionConfig,
    state: &mut PushState,
    now_ms: i64,
) -> Result<PushTally, RunError> {
    let store = ctx.store();
    let inst = ctx.institution_id();
    let mut tally = PushTally::default();
    let Some(mut watermark) = state.watermark else {
        state.watermark = Some(store.current_change_seq(inst).await?);
        state.since_ms = now_ms;
        return Ok(tally);
    };
    let schema = store.field_schema(inst).await?;
    let constituent = constituent_ref(cfg, &schema);

    // The contacts refused before, with their current values.
    let waiting: Vec<i64> = state.retries.keys().copied().collect();
    let mut handled = std::collections::HashSet::new();
    for id in waiting {
        if ctx.is_cancelled() {
            return Err(RunError::cancelled());
        }
        handled.insert(id);
        let c = match store.contact(inst, id).await {
            Ok(c) => c,
            Err(ferry_store::StoreError::NotFound) => {
                // Deleted since: nothing to send.
                state.retries.remove(&id);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if c.data.sms_opt_in == SmsOptIn::Unknown {
            state.retries.remove(&id);
            continue;
        }
        tally.retried += 1;
        let outcome = push_one(ctx, client, &schema, &constituent, &c, &mut tally).await?;
        if matches!(outcome, Outcome::Done { .. }) {
            tally.retried_ok += 1;
        }
        settle(ctx, state, &c, outcome, &mut tally).await?;
    }

    loop {
        let page = store.contacts_for_sync(inst, watermark, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for c in &page {
            if ctx.is_cancelled() {
                return Err(RunError::cancelled());
            }
            let changed = c
                .data
                .sms_opt_in_changed_at
                .is_some_and(|t| t.as_millisecond() >= state.since_ms - STAMP_MARGIN_MS);
            if changed && c.data.sms_opt_in != SmsOptIn::Unknown && !handled.contains(&c.id) {
                let outcome = push_one(ctx, client, &schema, &constituent, c, &mut tally).await?;
                // The watermark passes the contact either way: a refused one waits in the
                // retries.
                watermark = c.change_seq;
                state.watermark = Some(watermark);
                settle(ctx, state, c, outcome, &mut tally).await?;
            }
            // Each contact's push is done (or logged) before the watermark passes it.
            watermark = c.change_seq;
        }
        state.watermark = Some(watermark);
        // The page is through: its contacts' sync status is written.
        ctx.flush_synced().await?;
    }
    state.watermark = Some(watermark);
    state.since_ms = now_ms;
    tally.retry_pending = state.retries.len() as u64;
    Ok(tally)
}

/// Records how a contact's push ended: a sent one leaves the retries; a refused one is
/// counted, logged and kept for the next push, or given up after [`MAX_ATTEMPTS`]. A
/// transient refusal ends the push (a retryable error).
async fn settle(
    ctx: &RunContext,
    state: &mut PushState,
    c: &Contact,
    outcome: Outcome,
    tally: &mut PushTally,
) -> Result<(), RunError> {
    let (message, transient) = match outcome {
        Outcome::Done { van_id } => {
            state.retries.remove(&c.id);
            let done = SyncResult::synced(c.id, SyncDirection::Outgoing, Some(van_id));
            return ctx.synced(done).await.map_err(RunError::from);
        }
        Outcome::Skipped { code } => {
            state.retries.remove(&c.id);
            let skipped = SyncResult::skipped(c.id, SyncDirection::Outgoing, code, None);
            return ctx.synced(skipped).await.map_err(RunError::from);
        }
        Outcome::Refused { message, transient } => (message, transient),
    };
    tally.errors += 1;
    let attempts = state.retries.get(&c.id).map_or(0, |r| r.attempts) + 1;
    let code = if attempts >= MAX_ATTEMPTS {
        "everyaction_gave_up"
    } else {
        "everyaction_refused"
    };
    ctx.synced(SyncResult::failed(
        c.id,
        SyncDirection::Outgoing,
        code,
        None,
    ))
    .await?;
    if attempts >= MAX_ATTEMPTS {
        state.retries.remove(&c.id);
        tally.gave_up += 1;
        log(
            ctx,
            c,
            "everyaction_gave_up",
            format!(
                "EveryAction refused the contact's opt-in status {attempts} times, so Ferry stopped trying; it is sent again when the status changes. EveryAction's last answer: {message}"
            ),
        )
        .await?;
    } else {
        state.retries.insert(
            c.id,
            Retry {
                attempts,
                last_error: message.clone(),
            },
        );
        log(
            ctx,
            c,
            "everyaction_refused",
            format!(
                "{message} (attempt {attempts} of {MAX_ATTEMPTS}; tried again on the next push)"
            ),
        )
        .await?;
    }
    if transient {
        tally.retry_pending = state.retries.len() as u64;
        return Err(RunError::retryable(format!(
            "EveryAction did not take a contact's opt-in status ({message}); the push stopped there and goes on with the next run"
        )));
    }
    Ok(())
}

async fn log(ctx: &RunContext, c: &Contact, code: &str, message: String) -> Result<(), RunError> {
    ctx.log(Some(c.id), SyncDirection::Outgoing, code, message)
        .await
        .map_err(RunError::from)
}

/// An error EveryAction gave for one contact: refused credentials stop the run; the rest is
/// the contact's refusal (transient for a 5xx or timeout), settled by the caller.
fn refused(e: EaError) -> Result<Outcome, RunError> {
    if e.is_refused_credentials() {
        return Err(RunError::fatal(e.message));
    }
    Ok(Outcome::Refused {
        transient: e.is_transient(),
        message: e.message,
    })
}

async fn push_one(
    ctx: &RunContext,
    client: &Client,
    schema: &ferry_core::contact::FieldSchema,
    constituent: &FieldRef,
    c: &Contact,
    tally: &mut PushTally,
) -> Result<Outcome, RunError> {
    let d = &c.data;
    let status = d.sms_opt_in;
    let Some(phone) = d
        .phone
        .as_ref()
        .and_then(|p| p.as_str().strip_prefix("+1"))
        .filter(|n| n.len() == 10)
    else {
        tally.skip("everyaction_not_us_mobile");
        return log(
            ctx,
            c,
            "everyaction_not_us_mobile",
            "the contact has no US mobile number, so its opt-in status is not sent to EveryAction"
                .into(),
        )
        .await
        .map(|()| Outcome::Skipped {
            code: "everyaction_not_us_mobile",
        });
    };
    if let Some(country) = d.country.as_deref().filter(|s| !s.trim().is_empty())
        && !matches!(
            country.trim().to_ascii_lowercase().as_str(),
            "us" | "usa" | "united states"
        )
    {
        tally.skip("everyaction_not_us");
        return log(
            ctx,
            c,
            "everyaction_not_us",
            format!("the contact's country is {country:?}, not US"),
        )
        .await
        .map(|()| Outcome::Skipped {
            code: "everyaction_not_us",
        });
    }
    let code = if status == SmsOptIn::OptedIn {
        "I"
    } else {
        "O"
    };
    let linked = value_text(&c.value_of(constituent));
    let van_id = if !linked.trim().is_empty() {
        linked
    } else {
        let first = d.first_name.clone().unwrap_or_default();
        let last = d.last_name.clone().unwrap_or_default();
        let named = !first.trim().is_empty() && !last.trim().is_empty();
        if status == SmsOptIn::OptedIn {
            let Some(email) = d.email.as_ref() else {
                tally.skip("everyaction_opt_in_without_email");
                return log(
                    ctx,
                    c,
                    "everyaction_opt_in_without_email",
                    "a new opt-in without an email is not added to EveryAction".into(),
                )
                .await
                .map(|()| Outcome::Skipped {
                    code: "everyaction_opt_in_without_email",
                });
            };
            // Name (when known), email and phone: above VAN's match minimum (an email alone is
            // one), so a retry finds the record made before instead of making another.
            let mut candidate = json!({
                "emails": [{"email": email.as_str()}],
                "phones": [{"phoneNumber": phone, "phoneType": "C", "phoneOptInStatus": "I"}],
            });
            if named {
                candidate["firstName"] = json!(first);
                candidate["lastName"] = json!(last);
            }
            match client.find_or_create(&candidate).await {
                Ok((id, created)) => {
                    tally.opt_ins += 1;
                    if created {
                        tally.created += 1;
                    } else {
                        // Matched: findOrCreate wrote nothing, so the opt-in still has to go.
                        if let Err(e) = client.set_phone_opt_in(&id, phone, code).await {
                            tally.opt_ins -= 1;
                            return refused(e);
                        }
                    }
                    write_back(ctx, schema, constituent, c, &id, tally).await?;
                    return Ok(Outcome::Done { van_id: id });
                }
                Err(e) => return refused(e),
            }
        }
        if !named {
            tally.skip("everyaction_no_match");
            return log(ctx, c, "everyaction_no_match", "the opt-out was not sent: without a VAN ID, EveryAction is searched by first and last name with the phone, and the contact lacks a name".into()).await.map(|()| Outcome::Skipped { code: "everyaction_no_match" });
        }
        let candidate =
            json!({"firstName": first, "lastName": last, "phones": [{"phoneNumber": phone}]});
        match client.find(&candidate).await {
            Ok(Some(id)) => {
                write_back(ctx, schema, constituent, c, &id, tally).await?;
                id
            }
            Ok(None) => {
                tally.skip("everyaction_no_match");
                return log(ctx, c, "everyaction_no_match", "no EveryAction record matches the contact's name and phone, so there is no opt-in status to update".into()).await.map(|()| Outcome::Skipped { code: "everyaction_no_match" });
            }
            Err(e) => return refused(e),
        }
    };
    match client.set_phone_opt_in(&van_id, phone, code).await {
        Ok(()) => {
            if status == SmsOptIn::OptedIn {
                tally.opt_ins += 1;
            } else {
                tally.opt_outs += 1;
            }
            Ok(Outcome::Done { van_id })
        }
        Err(e) => refused(e),
    }
}

/// Stores the VAN ID as the contact's Constituent ID: the CRM ID without taking a change
/// sequence (bookkeeping), or the chosen custom field.
async fn write_back(
    ctx: &RunContext,
    schema: &ferry_core::contact::FieldSchema,
    constituent: &FieldRef,
    c: &Contact,
    van_id: &str,
    tally: &mut PushTally,
) -> Result<(), RunError> {
    let store = ctx.store();
    let inst = ctx.institution_id();
    let written = match constituent {
        FieldRef::Default(ferry_core::contact::DefaultField::CrmId) => store
            .set_crm_ids(inst, &[(c.id, van_id.to_string())])
            .await?
            .first()
            .copied()
            .unwrap_or(false),
        other => {
            let id = c.id.to_string();
            let w = ContactWrite::parse(
                schema,
                [("id", Raw::Str(&id)), (other.name(), Raw::Str(van_id))],
            );
            match w {
                Ok(w) => store
                    .apply_contact_writes(inst, &[w], WriteKind::Edit)
                    .await?
                    .first()
                    .is_some_and(Result::is_ok),
                Err(_) => false,
            }
        }
    };
    if written {
        tally.linked += 1;
        Ok(())
    } else {
        log(
            ctx,
            c,
            "everyaction_van_id_not_written",
            format!("EveryAction record {van_id} could not be stored as the contact's Constituent ID (another contact has it, or the field holds another ID)"),
        )
        .await
    }
}
