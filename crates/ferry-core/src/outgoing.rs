//! Outgoing matching (seed 002, "Matching Logic", when sending data from Ferry to a CRM):
//!
//! 1. A CRM ID is a guaranteed match: every mapped field is updated. Not found is an error.
//!    Otherwise, when the CRM keeps Ferry's platform ID in an external-ID field (Salesforce's
//!    `Ferry_Id__c`), the record with the contact's platform ID; its ID is written back.
//! 2. Otherwise, with an email, find the CRM contact with that email; then write its ID back as
//!    the contact's CRM ID for next time.
//! 3. Otherwise search first + last name, and accept only a result whose phone is the
//!    contact's (there may be many John Smiths); write its ID back.
//! 4. Otherwise create the contact in the CRM, and write the new ID back.
//!
//! The connector asks the CRM what [`next_lookup`] names, records the answer in [`Lookups`], and
//! calls [`decide`] until it returns a decision.

use crate::phone::Phone;

/// What the contact carries that matching uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutgoingKeys<'a> {
    /// The CRM's record ID, when the contact has one: a guaranteed match.
    pub crm_id: Option<&'a str>,
    /// The contact's platform ID, when the CRM keeps it in an external-ID field.
    pub external_id: Option<&'a str>,
    /// The contact's email.
    pub email: Option<&'a str>,
    /// The contact's first name.
    pub first_name: Option<&'a str>,
    /// The contact's last name.
    pub last_name: Option<&'a str>,
    /// The contact's phone; a name search's result must have it.
    pub phone: Option<&'a Phone>,
}

/// A CRM contact found by a name search, with the phone it has there (as the CRM stores it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameResult {
    /// The CRM's record ID.
    pub id: String,
    /// `None` when the CRM contact has no phone.
    pub phone: Option<String>,
}

/// The answers the CRM gave so far; `None` = not asked yet.
#[derive(Debug, Clone, Default)]
pub struct Lookups {
    /// Whether the contact with the CRM ID exists.
    pub by_id_exists: Option<bool>,
    /// The CRM contact whose external-ID field holds the platform ID (`Some(None)`: none).
    pub by_external_id: Option<Option<String>>,
    /// The CRM contact with the email (`Some(None)`: none has it).
    pub by_email: Option<Option<String>>,
    /// The name search's results.
    pub by_name: Option<Vec<NameResult>>,
}

/// The next question for the CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Does the contact with this ID exist?
    ById,
    /// Which contact has the platform ID in its external-ID field?
    ByExternalId,
    /// Which contact has this email?
    ByEmail,
    /// Which contacts have this first and last name (with their phones)?
    ByName,
}

/// How an outgoing contact was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutgoingMatch {
    /// By the CRM ID the contact carries.
    CrmId,
    /// By the platform ID in the CRM's external-ID field.
    ExternalId,
    /// By email.
    Email,
    /// By first and last name, with the same phone.
    NameAndPhone,
}

/// What to do with one outgoing contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutgoingDecision {
    /// Update this CRM contact with every mapped field. `write_back`: set the contact's CRM ID to
    /// `id` in Ferry afterwards.
    Update {
        /// The CRM contact.
        id: String,
        /// How it was found.
        by: OutgoingMatch,
        /// Whether Ferry must store `id` as the contact's CRM ID.
        write_back: bool,
    },
    /// Create the contact in the CRM, then write its new ID back as the CRM ID.
    Create,
}

/// Why an outgoing contact cannot be sent. Each has a code in the error dictionary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutgoingError {
    /// The contact's CRM ID is not in the CRM (`crm_id_not_found`).
    #[error("no CRM contact has the ID {0}")]
    CrmIdNotFound(String),
}

impl OutgoingError {
    /// The error dictionary code.
    pub fn code(&self) -> &'static str {
        match self {
            OutgoingError::CrmIdNotFound(_) => "crm_id_not_found",
        }
    }
}

fn present(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// The question to ask next, or `None` when [`decide`] can decide.
pub fn next_lookup(keys: &OutgoingKeys<'_>, known: &Lookups) -> Option<Lookup> {
    if present(keys.crm_id).is_some() {
        return known.by_id_exists.is_none().then_some(Lookup::ById);
    }
    if present(keys.external_id).is_some() {
        match &known.by_external_id {
            None => return Some(Lookup::ByExternalId),
            Some(Some(_)) => return None,
            Some(None) => {}
        }
    }
    if present(keys.email).is_some() {
        match &known.by_email {
            None => return Some(Lookup::ByEmail),
            Some(Some(_)) => return None,
            Some(None) => {}
        }
    }
    let can_search = present(keys.first_name).is_some()
        && present(keys.last_name).is_some()
        && keys.phone.is_some();
    (can_search && known.by_name.is_none()).then_some(Lookup::ByName)
}

/// The decision, once [`next_lookup`] has nothing more to ask. Panics if it has.
pub fn decide(keys: &OutgoingKeys<'_>, known: &Lookups) -> Result<OutgoingDecision, OutgoingError> {
    assert!(
        next_lookup(keys, known).is_none(),
        "decide() called with a lookup outstanding"
    );
    if let Some(id) = present(keys.crm_id) {
        return if known.by_id_exists == Some(true) {
            Ok(OutgoingDecision::Update {
                id: id.to_string(),
                by: OutgoingMatch::CrmId,
                write_back: false,
            })
        } else {
            Err(OutgoingError::CrmIdNotFound(id.to_string()))
        };
    }
    if let Some(Some(id)) = &known.by_external_id {
        return Ok(OutgoingDecision::Update {
            id: id.clone(),
            by: OutgoingMatch::ExternalId,
            write_back: true,
        });
    }
    if let Some(Some(id)) = &known.by_email {
        return Ok(OutgoingDecision::Update {
            id: id.clone(),
            by: OutgoingMatch::Email,
            write_back: true,
        });
    }
    if let (Some(results), Some(phone)) = (&known.by_name, keys.phone) {
        // The same person: the phone in the CRM, read as a phone, is the contact's. Of several
        // (duplicates in the CRM), the oldest record (lowest numeric ID) wins, every time.
        let mut same: Vec<&NameResult> = results
            .iter()
            .filter(|r| {
                r.phone
                    .as_deref()
                    .and_then(|p| Phone::parse(p).ok())
                    .is_some_and(|p| &p == phone)
            })
            .collect();
        same.sort_by_key(|r| (r.id.len(), r.id.clone()));
        if let Some(r) = same.first() {
            return Ok(OutgoingDecision::Update {
                id: r.id.clone(),
                by: OutgoingMatch::NameAndPhone,
                write_back: true,
            });
        }
    }
    Ok(OutgoingDecision::Create)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(s: &str) -> Phone {
        Phone::parse(s).unwrap()
    }

    fn name_result(id: &str, phone: Option<&str>) -> NameResult {
        NameResult {
            id: id.into(),
            phone: phone.map(str::to_string),
        }
    }

    /// Runs the loop as a connector does, answering each lookup from `answers`.
    fn run(
        keys: OutgoingKeys<'_>,
        answers: &Lookups,
    ) -> (Vec<Lookup>, Result<OutgoingDecision, OutgoingError>) {
        let mut known = Lookups::default();
        let mut asked = Vec::new();
        while let Some(l) = next_lookup(&keys, &known) {
            asked.push(l);
            match l {
                Lookup::ById => known.by_id_exists = answers.by_id_exists,
                Lookup::ByExternalId => known.by_external_id = answers.by_external_id.clone(),
                Lookup::ByEmail => known.by_email = answers.by_email.clone(),
                Lookup::ByName => known.by_name = answers.by_name.clone(),
            }
            assert!(asked.len() <= 4, "a lookup was asked twice: {asked:?}");
        }
        (asked, decide(&keys, &known))
    }

    #[test]
    fn each_branch_of_the_seed() {
        let p = phone("6175550101");
        let full = OutgoingKeys {
            crm_id: None,
            external_id: None,
            email: Some("ana@state.edu"),
            first_name: Some("Ana"),
            last_name: Some("Diaz"),
            phone: Some(&p),
        };
        let with_crm = OutgoingKeys {
            crm_id: Some("901"),
            ..full
        };
        let no_email = OutgoingKeys {
            email: None,
            ..full
        };
        let update = |id: &str, by, write_back| {
            Ok(OutgoingDecision::Update {
                id: id.into(),
                by,
                write_back,
            })
        };
        use Lookup::*;
        use OutgoingMatch::*;
        type Case<'a> = (
            &'a str,
            OutgoingKeys<'a>,
            Lookups,
            Vec<Lookup>,
            Result<OutgoingDecision, OutgoingError>,
        );
        let with_external = OutgoingKeys {
            external_id: Some("42"),
            ..full
        };
        let cases: Vec<Case<'_>> = vec![
            (
                "external-ID field configured and holding the platform ID: matched before email",
                with_external,
                Lookups {
                    by_external_id: Some(Some("003X".into())),
                    by_email: Some(Some("7".into())),
                    ..Default::default()
                },
                vec![ByExternalId],
                update("003X", ExternalId, true),
            ),
            (
                "external ID not found: on to email",
                with_external,
                Lookups {
                    by_external_id: Some(None),
                    by_email: Some(Some("7".into())),
                    ..Default::default()
                },
                vec![ByExternalId, ByEmail],
                update("7", Email, true),
            ),
            (
                "a CRM ID still comes first",
                OutgoingKeys {
                    crm_id: Some("901"),
                    ..with_external
                },
                Lookups {
                    by_id_exists: Some(true),
                    by_external_id: Some(Some("003X".into())),
                    ..Default::default()
                },
                vec![ById],
                update("901", CrmId, false),
            ),
            (
                "CRM ID present: a guaranteed match, all fields updated, nothing else asked",
                with_crm,
                Lookups {
                    by_id_exists: Some(true),
                    by_email: Some(Some("7".into())),
                    ..Default::default()
                },
                vec![ById],
                update("901", CrmId, false),
            ),
            (
                "CRM ID present but not found: an error, no fallback to email or name",
                with_crm,
                Lookups {
                    by_id_exists: Some(false),
                    by_email: Some(Some("7".into())),
                    ..Default::default()
                },
                vec![ById],
                Err(OutgoingError::CrmIdNotFound("901".into())),
            ),
            (
                "no CRM ID, email found: match by email and write the ID back",
                full,
                Lookups {
                    by_email: Some(Some("7".into())),
                    ..Default::default()
                },
                vec![ByEmail],
                update("7", Email, true),
            ),
            (
                "email not found: search by name, accept the result whose phone matches",
                full,
                Lookups {
                    by_email: Some(None),
                    by_name: Some(vec![
                        name_result("11", Some("+1 617 555 0199")),
                        name_result("12", Some("(617) 555-0101")),
                    ]),
                    ..Default::default()
                },
                vec![ByEmail, ByName],
                update("12", NameAndPhone, true),
            ),
            (
                "no email: name search straight away",
                no_email,
                Lookups {
                    by_name: Some(vec![name_result("12", Some("617-555-0101"))]),
                    ..Default::default()
                },
                vec![ByName],
                update("12", NameAndPhone, true),
            ),
            (
                "many John Smiths, none with this phone: create",
                no_email,
                Lookups {
                    by_name: Some(vec![
                        name_result("11", Some("6175550199")),
                        name_result("13", None),
                    ]),
                    ..Default::default()
                },
                vec![ByName],
                Ok(OutgoingDecision::Create),
            ),
            (
                "duplicates in the CRM with the same name and phone: the oldest record, every time",
                no_email,
                Lookups {
                    by_name: Some(vec![
                        name_result("120", Some("6175550101")),
                        name_result("13", Some("+16175550101")),
                    ]),
                    ..Default::default()
                },
                vec![ByName],
                update("13", NameAndPhone, true),
            ),
            (
                "nothing found anywhere: create in the CRM (the new ID is written back)",
                full,
                Lookups {
                    by_email: Some(None),
                    by_name: Some(vec![]),
                    ..Default::default()
                },
                vec![ByEmail, ByName],
                Ok(OutgoingDecision::Create),
            ),
            (
                "no email and no last name: nothing to search by, create",
                OutgoingKeys {
                    email: None,
                    last_name: Some("  "),
                    ..full
                },
                Lookups::default(),
                vec![],
                Ok(OutgoingDecision::Create),
            ),
            (
                "a blank CRM ID counts as none",
                OutgoingKeys {
                    crm_id: Some(" "),
                    ..full
                },
                Lookups {
                    by_email: Some(Some("7".into())),
                    ..Default::default()
                },
                vec![ByEmail],
                update("7", Email, true),
            ),
        ];
        for (name, keys, answers, asked, expected) in cases {
            let (got_asked, got) = run(keys, &answers);
            assert_eq!(got_asked, asked, "{name}: lookups");
            assert_eq!(got, expected, "{name}: decision");
        }
        assert_eq!(
            OutgoingError::CrmIdNotFound("1".into()).code(),
            "crm_id_not_found"
        );
    }
}
