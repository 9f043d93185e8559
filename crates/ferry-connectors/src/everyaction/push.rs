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

use std::collections::BTreeMap;

use ferry_core::contact::{Contact, ContactWrite, FieldRef, Raw, SmsOptIn, value_text};
use ferry_core::run::SyncDirection;
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

/// Where the push stands, kept in the instance's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushState {
    /// The contact change sequence the push has read up to; `None` before the first push.
    pub watermark: Option<i64>,
    /// When that push started (ms): an opt-in status that changed before it was pushed then.
    pub since_ms: i64,
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

/// Pushes the opt-in changes since `state`, moving `state` along; `now_ms` is this push's
/// start. The first push only starts the watermark: opt-ins from before activation are not
/// new.
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
            if changed && c.data.sms_opt_in != SmsOptIn::Unknown {
                push_one(ctx, client, &schema, &constituent, c, &mut tally).await?;
            }
            // Each contact's push is done (or logged) before the watermark passes it.
            watermark = c.change_seq;
        }
    }
    state.watermark = Some(watermark);
    state.since_ms = now_ms;
    Ok(tally)
}

async fn log(ctx: &RunContext, c: &Contact, code: &str, message: String) -> Result<(), RunError> {
    ctx.log(Some(c.id), SyncDirection::Outgoing, code, message)
        .await
        .map_err(RunError::from)
}

/// An error EveryAction gave for one contact: transient ones stop the run (it is retried and
/// the watermark has not passed the contact), others are logged.
async fn refused(
    ctx: &RunContext,
    c: &Contact,
    e: EaError,
    tally: &mut PushTally,
) -> Result<(), RunError> {
    if e.is_transient() || e.is_refused_credentials() {
        return Err(if e.is_transient() {
            RunError::retryable(e.message)
        } else {
            RunError::fatal(e.message)
        });
    }
    tally.errors += 1;
    log(ctx, c, "everyaction_refused", e.message).await
}

async fn push_one(
    ctx: &RunContext,
    client: &Client,
    schema: &ferry_core::contact::FieldSchema,
    constituent: &FieldRef,
    c: &Contact,
    tally: &mut PushTally,
) -> Result<(), RunError> {
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
        .await;
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
        .await;
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
                .await;
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
                            return refused(ctx, c, e, tally).await;
                        }
                    }
                    write_back(ctx, schema, constituent, c, &id, tally).await?;
                    return Ok(());
                }
                Err(e) => return refused(ctx, c, e, tally).await,
            }
        }
        if !named {
            tally.skip("everyaction_no_match");
            return log(ctx, c, "everyaction_no_match", "the opt-out was not sent: without a VAN ID, EveryAction is searched by first and last name with the phone, and the contact lacks a name".into()).await;
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
                return log(ctx, c, "everyaction_no_match", "no EveryAction record matches the contact's name and phone, so there is no opt-in status to update".into()).await;
            }
            Err(e) => return refused(ctx, c, e, tally).await,
        }
    };
    match client.set_phone_opt_in(&van_id, phone, code).await {
        Ok(()) => {
            if status == SmsOptIn::OptedIn {
                tally.opt_ins += 1;
            } else {
                tally.opt_outs += 1;
            }
            Ok(())
        }
        Err(e) => refused(ctx, c, e, tally).await,
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
