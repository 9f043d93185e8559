//! Incoming matching (seed 002, "When sending data … to Mainstay"), shared by the CSV import,
//! the API and every incoming sync:
//!
//! 1. A platform ID is a guaranteed match; not found is an error. All fields may be updated.
//! 2. Otherwise CRM ID and/or phone find the contact; every field but platform ID, CRM ID and
//!    phone may be updated. When both are given and they disagree (different contacts, or the
//!    contact found has a different value for the other key) the row is a conflict and skipped.
//! 3. Otherwise a new contact is created.

use crate::contact::{ContactId, Protected};
use crate::phone::Phone;

/// The keys a write carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct MatchKeys<'a> {
    /// Ferry's contact ID, when the write names one: a guaranteed match.
    pub platform_id: Option<ContactId>,
    /// The CRM's record ID, when the write carries one.
    pub crm_id: Option<&'a str>,
    /// The phone, when the write carries one.
    pub phone: Option<&'a Phone>,
}

/// A contact found by one of the keys, with its own key values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate<'a> {
    /// The contact found.
    pub id: ContactId,
    /// Its CRM ID; `None` when it has none.
    pub crm_id: Option<&'a str>,
    /// Its phone; `None` when it has none.
    pub phone: Option<&'a Phone>,
}

/// What the store found for each key (`None` = no contact has it, or the key was not given).
#[derive(Debug, Clone, Copy, Default)]
pub struct Found<'a> {
    /// The contact with the write's platform ID.
    pub by_platform_id: Option<Candidate<'a>>,
    /// The contact with the write's CRM ID.
    pub by_crm_id: Option<Candidate<'a>>,
    /// The contact with the write's phone.
    pub by_phone: Option<Candidate<'a>>,
}

/// How a write was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// By platform ID: every field may be updated.
    PlatformId,
    /// By CRM ID alone.
    CrmId,
    /// By phone alone.
    Phone,
    /// By CRM ID and phone, both pointing at the same contact.
    CrmIdAndPhone,
}

/// The outcome of matching one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Update this contact, leaving the protected fields alone.
    Update {
        /// The contact to update.
        id: ContactId,
        /// Which key found it.
        by: MatchedBy,
        /// The fields the write must leave alone.
        protected: Protected,
    },
    /// Create a new contact.
    Create,
}

/// Why a write cannot be applied. Each has a code in the error dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchError {
    /// No contact has the platform ID (`platform_id_not_found`).
    PlatformIdNotFound(ContactId),
    /// The CRM ID finds one contact and the phone another (`match_conflict`).
    KeysPointAtDifferentContacts {
        /// The contact with the CRM ID.
        crm_contact: ContactId,
        /// The contact with the phone.
        phone_contact: ContactId,
    },
    /// The contact with the CRM ID has a different phone (`match_conflict`).
    CrmIdMatchHasDifferentPhone {
        /// The contact with the CRM ID.
        contact: ContactId,
    },
    /// The contact with the phone has a different CRM ID (`match_conflict`).
    PhoneMatchHasDifferentCrmId {
        /// The contact with the phone.
        contact: ContactId,
    },
    /// The write sets a phone that this other contact has (`phone_in_use`).
    PhoneInUse(ContactId),
    /// The write sets a CRM ID that this other contact has (`crm_id_in_use`).
    CrmIdInUse(ContactId),
}

impl std::fmt::Display for MatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(|id| format!("contact {id}")))
    }
}

impl std::error::Error for MatchError {}

impl MatchError {
    /// The message, with each contact it names put in words by `name` (a batch names the
    /// contacts it has only just created by the write that created them, as they have no ID yet).
    pub fn describe(&self, name: impl Fn(ContactId) -> String) -> String {
        match self {
            MatchError::PlatformIdNotFound(id) => format!("no contact has platform ID {id}"),
            MatchError::KeysPointAtDifferentContacts {
                crm_contact,
                phone_contact,
            } => format!(
                "CRM ID and phone point at different contacts ({} and {})",
                name(*crm_contact),
                name(*phone_contact)
            ),
            MatchError::CrmIdMatchHasDifferentPhone { contact } => {
                format!("{} has this CRM ID but a different phone", name(*contact))
            }
            MatchError::PhoneMatchHasDifferentCrmId { contact } => {
                format!("{} has this phone but a different CRM ID", name(*contact))
            }
            MatchError::PhoneInUse(id) => {
                format!(
                    "the phone number belongs to another contact ({})",
                    name(*id)
                )
            }
            MatchError::CrmIdInUse(id) => {
                format!("the CRM ID belongs to another contact ({})", name(*id))
            }
        }
    }

    /// The error dictionary code.
    pub fn code(&self) -> &'static str {
        match self {
            MatchError::PlatformIdNotFound(_) => "platform_id_not_found",
            MatchError::KeysPointAtDifferentContacts { .. }
            | MatchError::CrmIdMatchHasDifferentPhone { .. }
            | MatchError::PhoneMatchHasDifferentCrmId { .. } => "match_conflict",
            MatchError::PhoneInUse(_) => "phone_in_use",
            MatchError::CrmIdInUse(_) => "crm_id_in_use",
        }
    }
}

/// Decides what one incoming write does, given what the store found for its keys.
pub fn decide(keys: MatchKeys<'_>, found: Found<'_>) -> Result<Decision, MatchError> {
    if let Some(pid) = keys.platform_id {
        let target = found
            .by_platform_id
            .ok_or(MatchError::PlatformIdNotFound(pid))?;
        // Every field may change, but a new phone or CRM ID must not belong to someone else.
        if let Some(other) = found.by_phone.filter(|c| c.id != target.id) {
            return Err(MatchError::PhoneInUse(other.id));
        }
        if let Some(other) = found.by_crm_id.filter(|c| c.id != target.id) {
            return Err(MatchError::CrmIdInUse(other.id));
        }
        return Ok(Decision::Update {
            id: target.id,
            by: MatchedBy::PlatformId,
            protected: Protected::default(),
        });
    }
    let protected = Protected { keys: true };
    match (keys.crm_id, keys.phone) {
        (Some(crm), Some(phone)) => match (found.by_crm_id, found.by_phone) {
            (Some(a), Some(b)) if a.id != b.id => Err(MatchError::KeysPointAtDifferentContacts {
                crm_contact: a.id,
                phone_contact: b.id,
            }),
            (Some(a), Some(_)) => Ok(Decision::Update {
                id: a.id,
                by: MatchedBy::CrmIdAndPhone,
                protected,
            }),
            (Some(a), None) => match a.phone {
                Some(p) if p != phone => {
                    Err(MatchError::CrmIdMatchHasDifferentPhone { contact: a.id })
                }
                _ => Ok(Decision::Update {
                    id: a.id,
                    by: MatchedBy::CrmId,
                    protected,
                }),
            },
            (None, Some(b)) => match b.crm_id {
                Some(c) if c != crm => {
                    Err(MatchError::PhoneMatchHasDifferentCrmId { contact: b.id })
                }
                _ => Ok(Decision::Update {
                    id: b.id,
                    by: MatchedBy::Phone,
                    protected,
                }),
            },
            (None, None) => Ok(Decision::Create),
        },
        (Some(_), None) => Ok(found
            .by_crm_id
            .map_or(Decision::Create, |a| Decision::Update {
                id: a.id,
                by: MatchedBy::CrmId,
                protected,
            })),
        (None, Some(_)) => Ok(found
            .by_phone
            .map_or(Decision::Create, |b| Decision::Update {
                id: b.id,
                by: MatchedBy::Phone,
                protected,
            })),
        (None, None) => Ok(Decision::Create),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(s: &str) -> Phone {
        Phone::parse(s).unwrap()
    }

    #[test]
    fn table() {
        let p1 = phone("6175550101");
        let p2 = phone("6175550102");
        let c = |id, crm: Option<&'static str>, ph: Option<&Phone>| {
            Some(Candidate {
                id,
                crm_id: crm,
                phone: ph.map(leak),
            })
        };
        let keys = |pid, crm, ph: Option<&Phone>| MatchKeys {
            platform_id: pid,
            crm_id: crm,
            phone: ph.map(leak),
        };
        let found = |pid, crm, ph| Found {
            by_platform_id: pid,
            by_crm_id: crm,
            by_phone: ph,
        };
        let prot = Protected { keys: true };
        let open = Protected::default();
        let upd = |id, by, protected| Ok(Decision::Update { id, by, protected });

        #[rustfmt::skip]
        let cases: Vec<(&str, MatchKeys, Found, Result<Decision, MatchError>)> = vec![
            ("platform id found: guaranteed match, all fields", keys(Some(7), None, None), found(c(7, None, None), None, None), upd(7, MatchedBy::PlatformId, open)),
            ("platform id not found: error", keys(Some(7), Some("C1"), Some(&p1)), found(None, c(8, Some("C1"), Some(&p1)), None), Err(MatchError::PlatformIdNotFound(7))),
            ("platform id wins over crm and phone of the same contact", keys(Some(7), Some("C1"), Some(&p1)), found(c(7, Some("C1"), Some(&p1)), c(7, Some("C1"), Some(&p1)), c(7, Some("C1"), Some(&p1))), upd(7, MatchedBy::PlatformId, open)),
            ("platform id update to a phone someone else has", keys(Some(7), None, Some(&p2)), found(c(7, None, Some(&p1)), None, c(9, None, Some(&p2))), Err(MatchError::PhoneInUse(9))),
            ("platform id update to a crm id someone else has", keys(Some(7), Some("C9"), None), found(c(7, None, None), c(9, Some("C9"), None), None), Err(MatchError::CrmIdInUse(9))),
            ("crm id only, found", keys(None, Some("C1"), None), found(None, c(3, Some("C1"), None), None), upd(3, MatchedBy::CrmId, prot)),
            ("crm id only, not found: create", keys(None, Some("C1"), None), found(None, None, None), Ok(Decision::Create)),
            ("phone only, found", keys(None, None, Some(&p1)), found(None, None, c(4, None, Some(&p1))), upd(4, MatchedBy::Phone, prot)),
            ("phone only, not found: create", keys(None, None, Some(&p1)), found(None, None, None), Ok(Decision::Create)),
            ("both point at the same contact", keys(None, Some("C1"), Some(&p1)), found(None, c(5, Some("C1"), Some(&p1)), c(5, Some("C1"), Some(&p1))), upd(5, MatchedBy::CrmIdAndPhone, prot)),
            ("both point at different contacts: conflict", keys(None, Some("C1"), Some(&p1)), found(None, c(5, Some("C1"), Some(&p2)), c(6, Some("C2"), Some(&p1))), Err(MatchError::KeysPointAtDifferentContacts { crm_contact: 5, phone_contact: 6 })),
            ("same crm id, different phone: conflict", keys(None, Some("C1"), Some(&p1)), found(None, c(5, Some("C1"), Some(&p2)), None), Err(MatchError::CrmIdMatchHasDifferentPhone { contact: 5 })),
            ("same crm id, contact has no phone: match", keys(None, Some("C1"), Some(&p1)), found(None, c(5, Some("C1"), None), None), upd(5, MatchedBy::CrmId, prot)),
            ("same phone, different crm id: conflict", keys(None, Some("C1"), Some(&p1)), found(None, None, c(6, Some("C2"), Some(&p1))), Err(MatchError::PhoneMatchHasDifferentCrmId { contact: 6 })),
            ("same phone, contact has no crm id: match", keys(None, Some("C1"), Some(&p1)), found(None, None, c(6, None, Some(&p1))), upd(6, MatchedBy::Phone, prot)),
            ("both given, neither found: create", keys(None, Some("C1"), Some(&p1)), found(None, None, None), Ok(Decision::Create)),
            ("no keys at all: create", keys(None, None, None), found(None, None, None), Ok(Decision::Create)),
        ];
        for (name, k, f, want) in cases {
            assert_eq!(decide(k, f), want, "{name}");
        }
    }

    // Candidates borrow their phones; leaking a few test values keeps the table readable.
    fn leak(p: &Phone) -> &'static Phone {
        Box::leak(Box::new(p.clone()))
    }

    #[test]
    fn codes() {
        assert_eq!(
            MatchError::PlatformIdNotFound(1).code(),
            "platform_id_not_found"
        );
        assert_eq!(
            MatchError::CrmIdMatchHasDifferentPhone { contact: 1 }.code(),
            "match_conflict"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn candidate(
        id: Option<i64>,
        crm: Option<u8>,
        phone: Option<u8>,
        phones: &'static [Phone],
    ) -> Option<Candidate<'static>> {
        let crm_ids: &'static [&'static str] = &["C0", "C1", "C2", "C3"];
        id.map(|id| Candidate {
            id,
            crm_id: crm.map(|c| crm_ids[c as usize % 4]),
            phone: phone.map(|p| &phones[p as usize % 4]),
        })
    }

    proptest! {
        /// Whatever the store finds, a decision updates only a contact that was found for one of
        /// the given keys, never rewrites keys unless matched by platform ID, and never merges
        /// two different contacts.
        #[test]
        fn decisions_only_touch_found_contacts(
            pid in proptest::option::of(1i64..5), crm in proptest::option::of(0u8..4), phone in proptest::option::of(0u8..4),
            fp in proptest::option::of((1i64..5, proptest::option::of(0u8..4), proptest::option::of(0u8..4))),
            fc in proptest::option::of((1i64..5, proptest::option::of(0u8..4), proptest::option::of(0u8..4))),
            fph in proptest::option::of((1i64..5, proptest::option::of(0u8..4), proptest::option::of(0u8..4))),
        ) {
            static PHONES: std::sync::OnceLock<Vec<Phone>> = std::sync::OnceLock::new();
            let phones: &'static [Phone] = PHONES.get_or_init(|| (1..=4).map(|i| Phone::parse(&format!("61755501{i:02}")).unwrap()).collect());
            let crm_ids = ["C0", "C1", "C2", "C3"];
            let keys = MatchKeys { platform_id: pid, crm_id: crm.map(|c| crm_ids[c as usize]), phone: phone.map(|p| &phones[p as usize]) };
            let found = Found {
                by_platform_id: pid.and(fp.and_then(|(i, c, p)| candidate(Some(i), c, p, phones))),
                by_crm_id: crm.and(fc.and_then(|(i, c, p)| candidate(Some(i), c, p, phones))),
                by_phone: phone.and(fph.and_then(|(i, c, p)| candidate(Some(i), c, p, phones))),
            };
            match decide(keys, found) {
                Ok(Decision::Update { id, by, protected }) => {
                    let ids: Vec<i64> = [found.by_platform_id, found.by_crm_id, found.by_phone].iter().flatten().map(|c| c.id).collect();
                    prop_assert!(ids.contains(&id));
                    prop_assert_eq!(protected.keys, by != MatchedBy::PlatformId);
                    if let (Some(a), Some(b)) = (found.by_crm_id, found.by_phone)
                        && by != MatchedBy::PlatformId {
                            prop_assert_eq!(a.id, b.id, "never merges two contacts");
                        }
                }
                Ok(Decision::Create) => {
                    prop_assert!(pid.is_none(), "a platform ID never creates");
                    prop_assert!(found.by_crm_id.is_none() && found.by_phone.is_none(), "a found key never creates a duplicate");
                }
                Err(MatchError::PlatformIdNotFound(_)) => prop_assert!(pid.is_some() && found.by_platform_id.is_none()),
                Err(_) => {}
            }
        }
    }
}
