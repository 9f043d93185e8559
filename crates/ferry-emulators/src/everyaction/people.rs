//! People as VAN holds them: parsing write bodies, merging them (append, dedupe, update in
//! place), matching (`find`), and rendering (`GET /people/{vanId}`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::VanError;
use super::time::iso;

/// A phone's opt-in status (`phoneOptInStatus` codes `I|U|O`, read back as words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OptIn {
    /// `I`, read as `Opt-In`.
    #[serde(rename = "Opt-In")]
    In,
    /// `U`, read as `Unknown` (the default).
    #[serde(rename = "Unknown")]
    Unknown,
    /// `O`, read as `Opt-Out`.
    #[serde(rename = "Opt-Out")]
    Out,
}

impl OptIn {
    /// The word VAN reads back.
    pub fn word(self) -> &'static str {
        match self {
            OptIn::In => "Opt-In",
            OptIn::Unknown => "Unknown",
            OptIn::Out => "Opt-Out",
        }
    }

    /// The write code `I|U|O` (also accepts the words, for admin calls).
    pub fn from_code(s: &str) -> Option<OptIn> {
        match s {
            "I" | "Opt-In" => Some(OptIn::In),
            "U" | "Unknown" => Some(OptIn::Unknown),
            "O" | "Opt-Out" => Some(OptIn::Out),
            _ => None,
        }
    }
}

/// A stored phone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phone {
    /// `phoneId`.
    pub phone_id: u64,
    /// Digits only, without the dialing prefix.
    pub phone_number: String,
    /// `dialingPrefix` ("1").
    pub dialing_prefix: String,
    /// `countryCode` ("US").
    pub country_code: String,
    /// `ext`.
    pub ext: Option<String>,
    /// `Personal|Work|Other`.
    pub phone_type: String,
    /// `Cell|Landline|Unknown|Fax|VoIP`.
    pub device_type: String,
    /// `isPreferred`.
    pub is_preferred: bool,
    /// The opt-in status (`smsOptInStatus` mirrors `phoneOptInStatus`).
    pub opt_in: OptIn,
    /// When it was added (ms).
    pub created_ms: i64,
}

/// A stored email.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Email {
    /// The address as written.
    pub email: String,
    /// `P|W|O`.
    pub kind: String,
    /// `isPreferred`.
    pub is_preferred: bool,
    /// `S|N|U`.
    pub subscription_status: String,
    /// Written with `isPreferred: true`: keeps the preference against later addresses.
    pub pinned: bool,
    /// When it was added (ms).
    pub created_ms: i64,
}

/// A stored address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// `addressId`.
    pub address_id: u64,
    /// `addressLine1..3`.
    pub address_line1: Option<String>,
    /// Second line.
    pub address_line2: Option<String>,
    /// Third line.
    pub address_line3: Option<String>,
    /// `city`.
    pub city: Option<String>,
    /// `stateOrProvince`.
    pub state_or_province: Option<String>,
    /// `zipOrPostalCode`.
    pub zip_or_postal_code: Option<String>,
    /// `countryCode` (default "US").
    pub country_code: String,
    /// `Home|Voting|Mailing|Work|Custom`.
    pub kind: String,
    /// `isPreferred`.
    pub is_preferred: bool,
}

/// Who made a record's last change: the API key (the requesting API user) or someone else
/// (the admin endpoints stand for other users and the VAN UI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Changer {
    /// A write through the API with the emulator's key.
    ApiUser,
    /// Anyone else.
    Other,
}

/// A person as the emulator holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    /// `vanId`.
    pub van_id: u64,
    /// Scalars (`firstName`, `lastName`, `dateOfBirth`, …) as written.
    pub scalars: BTreeMap<String, String>,
    /// Phones in the order they were added.
    pub phones: Vec<Phone>,
    /// Emails in the order they were added.
    pub emails: Vec<Email>,
    /// Addresses in the order they were added.
    pub addresses: Vec<Address>,
    /// When it was created (ms).
    pub created_ms: i64,
    /// When it last changed (ms): what the changed-entity export jobs select on.
    pub modified_ms: i64,
    /// Who made the last change (for `excludeChangesFromSelf`).
    pub modified_by: Changer,
}

/// Scalars a write may set, in the order they are rendered.
pub const SCALARS: [&str; 14] = [
    "firstName",
    "middleName",
    "lastName",
    "suffix",
    "title",
    "dateOfBirth",
    "sex",
    "party",
    "employer",
    "occupation",
    "nickname",
    "website",
    "jobTitle",
    "contactMethodPreferenceCode",
];

/// Scalars that read back only under `$expand=preferences`.
const PREFERENCE_SCALARS: [&str; 4] = [
    "nickname",
    "website",
    "jobTitle",
    "contactMethodPreferenceCode",
];

/// The 23 documented `$expand` values.
pub const EXPANDS: [&str; 23] = [
    "addresses",
    "biography",
    "cases",
    "codes",
    "contributionHistory",
    "customFields",
    "customProperties",
    "disclosureFieldValues",
    "districts",
    "electionRecords",
    "emails",
    "externalIds",
    "membershipStatuses",
    "notes",
    "organizationRoles",
    "phones",
    "pollingLocation",
    "preferences",
    "primaryContact",
    "recordedAddresses",
    "reportedDemographics",
    "scores",
    "suppressions",
];

/// A phone in a write body.
#[derive(Debug, Clone, Default)]
pub struct PhoneInput {
    pub number: String,
    pub phone_type: Option<String>,
    pub device_type: Option<String>,
    pub ext: Option<String>,
    pub is_preferred: Option<bool>,
    pub opt_in: Option<OptIn>,
    pub dialing_prefix: Option<String>,
    pub country_code: Option<String>,
}

/// An email in a write body.
#[derive(Debug, Clone, Default)]
pub struct EmailInput {
    pub email: String,
    pub kind: Option<String>,
    pub is_preferred: Option<bool>,
    pub subscription_status: Option<String>,
}

/// An address in a write body.
#[derive(Debug, Clone, Default)]
pub struct AddressInput {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub line3: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub country_code: Option<String>,
    pub kind: Option<String>,
    pub is_preferred: Option<bool>,
}

/// A parsed write (or match-candidate) body.
#[derive(Debug, Clone, Default)]
pub struct PersonInput {
    /// `vanId` in the body, if any.
    pub van_id: Option<i64>,
    pub scalars: BTreeMap<String, String>,
    pub phones: Vec<PhoneInput>,
    pub emails: Vec<EmailInput>,
    pub addresses: Vec<AddressInput>,
}

impl PersonInput {
    /// Whether the body would change nothing.
    pub fn is_empty(&self) -> bool {
        self.scalars.is_empty()
            && self.phones.is_empty()
            && self.emails.is_empty()
            && self.addresses.is_empty()
    }
}

fn opt_str(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, VanError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(VanError::invalid(
            format!("'{key}' must be a string."),
            format!("{path}{key}"),
        )),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, VanError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(VanError::invalid(
            format!("'{key}' must be true or false."),
            format!("{path}{key}"),
        )),
    }
}

fn list<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Vec<&'a Value>, VanError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => Ok(a.iter().collect()),
        Some(_) => Err(VanError::invalid(format!("'{key}' must be a list."), key)),
    }
}

/// Digits of a phone number (punctuation stripped).
pub fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Ten NANP digits from a written number (a leading `1` dropped), if it is a valid US number
/// by VAN's pattern `^1?[2-9][0-8]\d[2-9]\d{6}$`.
pub fn us_number(raw: &str) -> Option<String> {
    let d = digits(raw);
    let d = match d.len() {
        11 if d.starts_with('1') => &d[1..],
        10 => &d[..],
        _ => return None,
    };
    let b = d.as_bytes();
    let ok = (b'2'..=b'9').contains(&b[0])
        && (b'0'..=b'8').contains(&b[1])
        && (b'2'..=b'9').contains(&b[3]);
    ok.then(|| d.to_string())
}

/// VAN's search pattern: `^1?[2-9][0-8]\d[2-9]\d{6,6}$` on the raw parameter.
pub fn search_phone_valid(raw: &str) -> bool {
    raw.chars().all(|c| c.is_ascii_digit()) && us_number(raw).is_some()
}

fn valid_email(s: &str) -> bool {
    let s = s.trim();
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.contains(char::is_whitespace)
        && !domain.contains('@')
}

/// Parses a person body (find, findOrCreate, create, update), with VAN's 400s for bad values.
pub fn parse_input(body: &Value) -> Result<PersonInput, VanError> {
    let Some(obj) = body.as_object() else {
        return Err(VanError::bad_request(
            "The request body must be a JSON object.",
        ));
    };
    let mut input = PersonInput::default();
    match obj.get("vanId") {
        None | Some(Value::Null) => {}
        Some(v) => {
            input.van_id = Some(
                v.as_i64()
                    .ok_or_else(|| VanError::invalid("'vanId' must be an integer.", "vanId"))?,
            )
        }
    }
    for key in SCALARS {
        if let Some(v) = opt_str(obj, key, "")? {
            input.scalars.insert(key.to_string(), v);
        }
    }
    for (i, p) in list(obj, "phones")?.into_iter().enumerate() {
        let path = format!("phones[{i}].");
        let Some(p) = p.as_object() else {
            // VAN answers a null phone entry with a 500 (the notes).
            return Err(VanError::internal());
        };
        let number = opt_str(p, "phoneNumber", &path)?.ok_or_else(|| {
            VanError::invalid("'phoneNumber' is required.", format!("{path}phoneNumber"))
        })?;
        let country = opt_str(p, "countryCode", &path)?;
        let d = digits(&number);
        let valid = match country.as_deref() {
            None | Some("US") | Some("CA") => us_number(&d).is_some(),
            Some(_) => (7..=15).contains(&d.len()),
        };
        if !valid {
            return Err(VanError::invalid(
                "Phone number is not valid. If entering UK number, please include leading 0.",
                format!("{path}phoneNumber"),
            ));
        }
        let phone_type = match opt_str(p, "phoneType", &path)? {
            None => None,
            Some(t) => Some(match t.as_str() {
                "H" | "C" | "M" | "P" => t,
                "W" | "O" | "F" => t,
                _ => {
                    return Err(VanError::invalid(
                        "'phoneType' must be one of H , W , O , C , M , F , P",
                        format!("{path}phoneType"),
                    ));
                }
            }),
        };
        let device_type = match p.get("deviceType") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let s = match v {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => String::new(),
                };
                Some(
                    match s.as_str() {
                        "C" | "1" => "Cell",
                        "L" | "2" => "Landline",
                        "U" | "4" => "Unknown",
                        "F" | "5" => "Fax",
                        "V" | "6" => "VoIP",
                        _ => {
                            return Err(VanError::invalid(
                                "'deviceType' must be one of C , L , U , F , V",
                                format!("{path}deviceType"),
                            ));
                        }
                    }
                    .to_string(),
                )
            }
        };
        let ext = opt_str(p, "ext", &path)?;
        if ext.as_ref().is_some_and(|e| e.chars().count() > 6) {
            return Err(VanError::invalid(
                "'ext' must be 6 characters or fewer.",
                format!("{path}ext"),
            ));
        }
        let opt_in = match opt_str(p, "phoneOptInStatus", &path)? {
            None => None,
            Some(s) => Some(match s.as_str() {
                "I" => OptIn::In,
                "U" => OptIn::Unknown,
                "O" => OptIn::Out,
                _ => {
                    return Err(VanError::invalid(
                        "'phoneOptInStatus' must be one of I , U , O",
                        format!("{path}phoneOptInStatus"),
                    ));
                }
            }),
        };
        input.phones.push(PhoneInput {
            number: d,
            phone_type,
            device_type,
            ext,
            is_preferred: opt_bool(p, "isPreferred", &path)?,
            opt_in,
            dialing_prefix: opt_str(p, "dialingPrefix", &path)?,
            country_code: country,
        });
    }
    for (i, e) in list(obj, "emails")?.into_iter().enumerate() {
        let path = format!("emails[{i}].");
        let Some(e) = e.as_object() else {
            return Err(VanError::internal());
        };
        let email = opt_str(e, "email", &path)?.unwrap_or_default();
        if !valid_email(&email) {
            return Err(VanError::invalid(
                "'email' is not a valid email address",
                format!("{path}email"),
            ));
        }
        let kind = opt_str(e, "type", &path)?;
        if kind
            .as_deref()
            .is_some_and(|k| !["P", "W", "O"].contains(&k))
        {
            return Err(VanError::invalid(
                "'type' must be one of P , W , O",
                format!("{path}type"),
            ));
        }
        let status = opt_str(e, "subscriptionStatus", &path)?;
        let subscribed = opt_bool(e, "isSubscribed", &path)?;
        if status.is_some() && subscribed.is_some() {
            return Err(VanError::invalid(
                "'isSubscribed' and 'subscriptionStatus' cannot both be set.",
                format!("{path}isSubscribed"),
            ));
        }
        if status
            .as_deref()
            .is_some_and(|s| !["S", "N", "U"].contains(&s))
        {
            return Err(VanError::invalid(
                "'subscriptionStatus' must be one of S , N , U",
                format!("{path}subscriptionStatus"),
            ));
        }
        let subscription_status = status.or(match subscribed {
            Some(false) => Some("U".to_string()),
            Some(true) => Some("S".to_string()),
            None => None,
        });
        input.emails.push(EmailInput {
            email: email.trim().to_string(),
            kind,
            is_preferred: opt_bool(e, "isPreferred", &path)?,
            subscription_status,
        });
    }
    for (i, a) in list(obj, "addresses")?.into_iter().enumerate() {
        let path = format!("addresses[{i}].");
        let Some(a) = a.as_object() else {
            return Err(VanError::internal());
        };
        let kind = opt_str(a, "type", &path)?;
        if kind
            .as_deref()
            .is_some_and(|k| !["Home", "Voting", "Mailing", "Work", "Custom"].contains(&k))
        {
            return Err(VanError::invalid(
                "'type' must be one of Home , Voting , Mailing , Work , Custom",
                format!("{path}type"),
            ));
        }
        input.addresses.push(AddressInput {
            line1: opt_str(a, "addressLine1", &path)?,
            line2: opt_str(a, "addressLine2", &path)?,
            line3: opt_str(a, "addressLine3", &path)?,
            city: opt_str(a, "city", &path)?,
            state: opt_str(a, "stateOrProvince", &path)?,
            zip: opt_str(a, "zipOrPostalCode", &path)?,
            country_code: opt_str(a, "countryCode", &path)?,
            kind,
            is_preferred: opt_bool(a, "isPreferred", &path)?,
        });
    }
    Ok(input)
}

/// Ids for phones and addresses, shared by every person.
#[derive(Debug, Default)]
pub struct Ids {
    pub next_phone: u64,
    pub next_address: u64,
}

impl Ids {
    fn phone(&mut self) -> u64 {
        self.next_phone += 1;
        self.next_phone
    }
    fn address(&mut self) -> u64 {
        self.next_address += 1;
        self.next_address
    }
}

impl Person {
    /// A new blank person.
    pub fn new(van_id: u64, now_ms: i64, by: Changer) -> Person {
        Person {
            van_id,
            scalars: BTreeMap::new(),
            phones: Vec::new(),
            emails: Vec::new(),
            addresses: Vec::new(),
            created_ms: now_ms,
            modified_ms: now_ms,
            modified_by: by,
        }
    }

    /// Merges a write: scalars replace, emails are appended unless identical (case-insensitive),
    /// phones are appended unless the number is already there (then its opt-in status and
    /// other given values change in place, when `phone_in_place`), addresses are always
    /// appended. Returns whether anything changed.
    pub fn merge(
        &mut self,
        input: &PersonInput,
        ids: &mut Ids,
        phone_in_place: bool,
        now_ms: i64,
        by: Changer,
    ) -> bool {
        let mut changed = false;
        for (k, v) in &input.scalars {
            if self.scalars.get(k) != Some(v) {
                self.scalars.insert(k.clone(), v.clone());
                changed = true;
            }
        }
        for p in &input.phones {
            let number = us_number(&p.number).unwrap_or_else(|| p.number.clone());
            let existing = phone_in_place
                .then(|| self.phones.iter_mut().find(|x| x.phone_number == number))
                .flatten();
            match existing {
                Some(x) => {
                    if let Some(o) = p.opt_in
                        && x.opt_in != o
                    {
                        x.opt_in = o;
                        changed = true;
                    }
                    if let Some(d) = &p.device_type
                        && &x.device_type != d
                    {
                        x.device_type = d.clone();
                        changed = true;
                    }
                    if let Some(true) = p.is_preferred
                        && !x.is_preferred
                    {
                        x.is_preferred = true;
                        changed = true;
                    }
                }
                None => {
                    let (phone_type, cell) = match p.phone_type.as_deref() {
                        Some("W") => ("Work", false),
                        Some("O" | "F") => ("Other", false),
                        Some("C") => ("Personal", true),
                        _ => ("Personal", false),
                    };
                    let device_type = p
                        .device_type
                        .clone()
                        .unwrap_or_else(|| if cell { "Cell" } else { "Unknown" }.to_string());
                    let is_preferred = p.is_preferred.unwrap_or(false);
                    if is_preferred {
                        for x in &mut self.phones {
                            x.is_preferred = false;
                        }
                    }
                    self.phones.push(Phone {
                        phone_id: ids.phone(),
                        phone_number: number,
                        dialing_prefix: p.dialing_prefix.clone().unwrap_or_else(|| "1".into()),
                        country_code: p.country_code.clone().unwrap_or_else(|| "US".into()),
                        ext: p.ext.clone(),
                        phone_type: phone_type.to_string(),
                        device_type,
                        is_preferred,
                        opt_in: p.opt_in.unwrap_or(OptIn::Unknown),
                        created_ms: now_ms,
                    });
                    changed = true;
                }
            }
        }
        for e in &input.emails {
            if let Some(x) = self
                .emails
                .iter_mut()
                .find(|x| x.email.eq_ignore_ascii_case(&e.email))
            {
                if let Some(s) = &e.subscription_status
                    && x.subscription_status != "U"
                    && &x.subscription_status != s
                {
                    x.subscription_status = s.clone();
                    changed = true;
                }
                continue;
            }
            // A new address becomes preferred unless another is pinned with `true`.
            let pinned = self.emails.iter().any(|x| x.is_preferred && x.pinned);
            let is_preferred = e.is_preferred.unwrap_or(!pinned);
            if is_preferred {
                for x in &mut self.emails {
                    x.is_preferred = false;
                }
            }
            self.emails.push(Email {
                email: e.email.clone(),
                kind: e.kind.clone().unwrap_or_else(|| "P".into()),
                is_preferred,
                subscription_status: e.subscription_status.clone().unwrap_or_else(|| "S".into()),
                pinned: e.is_preferred == Some(true),
                created_ms: now_ms,
            });
            changed = true;
        }
        for a in &input.addresses {
            let is_preferred = a.is_preferred.unwrap_or(true);
            if is_preferred {
                for x in &mut self.addresses {
                    x.is_preferred = false;
                }
            }
            self.addresses.push(Address {
                address_id: ids.address(),
                address_line1: a.line1.clone(),
                address_line2: a.line2.clone(),
                address_line3: a.line3.clone(),
                city: a.city.clone(),
                state_or_province: a.state.clone(),
                zip_or_postal_code: a.zip.clone(),
                country_code: a.country_code.clone().unwrap_or_else(|| "US".into()),
                kind: a.kind.clone().unwrap_or_else(|| "Home".into()),
                is_preferred,
            });
            changed = true;
        }
        if changed {
            self.modified_ms = now_ms;
            self.modified_by = by;
        }
        changed
    }

    /// A scalar.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.scalars.get(key).map(String::as_str)
    }

    /// The best phone (`isBest`): the preferred one, else the newest.
    pub fn best_phone(&self) -> Option<&Phone> {
        self.phones
            .iter()
            .find(|p| p.is_preferred)
            .or(self.phones.last())
    }

    /// The preferred email, else the newest.
    pub fn best_email(&self) -> Option<&Email> {
        self.emails
            .iter()
            .find(|e| e.is_preferred)
            .or(self.emails.last())
    }

    /// The best address: the preferred one, else the newest.
    pub fn best_address(&self) -> Option<&Address> {
        self.addresses
            .iter()
            .rev()
            .find(|a| a.is_preferred)
            .or(self.addresses.last())
    }

    /// The addresses a read returns: the best `Voting` and the best `Mailing` address (the
    /// newest preferred address of that type, else the best address of any type), so one
    /// address filling both slots comes back twice.
    fn read_addresses(&self) -> Vec<(&Address, &'static str)> {
        let slot = |kind: &str| {
            self.addresses
                .iter()
                .rev()
                .find(|a| a.kind == kind)
                .or(self.best_address())
        };
        let mut out = Vec::new();
        if let Some(a) = slot("Voting") {
            out.push((a, "Voting"));
        }
        if let Some(a) = slot("Mailing") {
            out.push((a, "Mailing"));
        }
        out
    }

    /// The person as `GET /people/{vanId}` renders it with these `$expand` values.
    pub fn render(&self, expand: &[&str]) -> Value {
        let has = |e: &str| expand.contains(&e);
        let mut obj = Map::new();
        obj.insert("vanId".into(), json!(self.van_id));
        for key in SCALARS {
            if PREFERENCE_SCALARS.contains(&key) && !has("preferences") {
                continue;
            }
            obj.insert(key.into(), json!(self.get(key)));
        }
        obj.insert("contactMode".into(), json!("Person"));
        obj.insert("contactSource".into(), json!("API"));
        obj.insert("dateCreated".into(), json!(iso(self.created_ms)));
        obj.insert("identifiers".into(), json!([]));
        let best_phone = self.best_phone().map(|p| p.phone_id);
        let phones = has("phones").then(|| {
            self.phones
                .iter()
                .map(|p| {
                    json!({
                        "phoneId": p.phone_id,
                        "phoneNumber": p.phone_number,
                        "dialingPrefix": p.dialing_prefix,
                        "countryCode": p.country_code,
                        "ext": p.ext,
                        "dateCreated": iso(p.created_ms),
                        "phoneType": p.phone_type,
                        "deviceType": p.device_type,
                        "isPreferred": p.is_preferred,
                        "isBest": Some(p.phone_id) == best_phone,
                        "isDisclosure": false,
                        "smsOptInStatus": p.opt_in.word(),
                        "phoneOptInStatus": p.opt_in.word(),
                        "isCellPhoneExchange": false,
                        "isCellStatus": null,
                        "tags": [],
                    })
                })
                .collect::<Vec<_>>()
        });
        obj.insert("phones".into(), json!(phones));
        let emails = has("emails").then(|| {
            self.emails
                .iter()
                .map(|e| {
                    let subscribed = match e.subscription_status.as_str() {
                        "S" => json!(true),
                        "U" => json!(false),
                        _ => Value::Null,
                    };
                    json!({
                        "email": e.email,
                        "type": e.kind,
                        "dateCreated": iso(e.created_ms),
                        "isPreferred": e.is_preferred,
                        "subscriptionStatus": e.subscription_status,
                        "isSubscribed": subscribed,
                    })
                })
                .collect::<Vec<_>>()
        });
        obj.insert("emails".into(), json!(emails));
        let addresses = has("addresses").then(|| {
            self.read_addresses()
                .into_iter()
                .map(|(a, slot)| {
                    let preview = [
                        a.address_line1.as_deref(),
                        a.address_line2.as_deref(),
                        a.city.as_deref(),
                        a.state_or_province.as_deref(),
                        a.zip_or_postal_code.as_deref(),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                    json!({
                        "addressId": a.address_id,
                        "addressLine1": a.address_line1,
                        "addressLine2": a.address_line2,
                        "addressLine3": a.address_line3,
                        "city": a.city,
                        "stateOrProvince": a.state_or_province,
                        "zipOrPostalCode": a.zip_or_postal_code,
                        "countryCode": a.country_code,
                        "type": slot,
                        "isPreferred": a.is_preferred,
                        "isBest": Some(a.address_id) == self.best_address().map(|b| b.address_id),
                        "preview": preview,
                        "streetAddress": a.address_line1,
                        "unitNo": null,
                        "geoLocation": null,
                        "displayMode": "Standard",
                    })
                })
                .collect::<Vec<_>>()
        });
        obj.insert("addresses".into(), json!(addresses));
        for e in EXPANDS {
            if !obj.contains_key(e) && e != "preferences" && e != "pollingLocation" {
                obj.insert(e.into(), if has(e) { json!([]) } else { Value::Null });
            }
        }
        Value::Object(obj)
    }
}

/// Lowercase with common Latin accents removed: VAN's matching ignores case and accents.
pub fn fold(s: &str) -> String {
    s.trim()
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
            'ç' => 'c',
            'è' | 'é' | 'ê' | 'ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ñ' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
            'ù' | 'ú' | 'û' | 'ü' => 'u',
            'ý' | 'ÿ' => 'y',
            c => c,
        })
        .collect()
}

/// What a match candidate has, for the minimum combinations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Criteria {
    pub names: bool,
    pub email: bool,
    pub phone: bool,
    pub zip5_dob: bool,
    pub street_zip5: bool,
}

impl PersonInput {
    /// The criteria this candidate carries.
    pub fn criteria(&self) -> Criteria {
        let has = |k: &str| self.scalars.get(k).is_some_and(|v| !v.trim().is_empty());
        let zip5 = self
            .addresses
            .iter()
            .any(|a| a.zip.as_deref().is_some_and(|z| digits(z).len() >= 5));
        let street = self.addresses.iter().any(|a| {
            a.zip.as_deref().is_some_and(|z| digits(z).len() >= 5)
                && a.line1.as_deref().is_some_and(|l| {
                    let mut words = l.split_whitespace();
                    words
                        .next()
                        .is_some_and(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
                        && words.next().is_some()
                })
        });
        Criteria {
            names: has("firstName") && has("lastName"),
            email: !self.emails.is_empty(),
            phone: !self.phones.is_empty(),
            zip5_dob: zip5 && has("dateOfBirth"),
            street_zip5: street,
        }
    }

    /// Whether the candidate meets one of the documented minimum combinations (plus phone
    /// alone when `phone_alone` — observed live, not documented).
    pub fn meets_minimum(&self, phone_alone: bool) -> bool {
        let c = self.criteria();
        (c.names && (c.email || c.phone || c.zip5_dob || c.street_zip5))
            || c.email
            || (c.phone && phone_alone)
    }

    /// Whether every field of the candidate agrees with `p` (any wrong extra field makes it
    /// Unmatched).
    pub fn agrees_with(&self, p: &Person) -> bool {
        for (k, v) in &self.scalars {
            if v.trim().is_empty() {
                continue;
            }
            if p.get(k).is_none_or(|x| fold(x) != fold(v)) {
                return false;
            }
        }
        for e in &self.emails {
            if !p
                .emails
                .iter()
                .any(|x| x.email.eq_ignore_ascii_case(&e.email))
            {
                return false;
            }
        }
        for ph in &self.phones {
            let n = us_number(&ph.number).unwrap_or_else(|| ph.number.clone());
            if !p.phones.iter().any(|x| x.phone_number == n) {
                return false;
            }
        }
        for a in &self.addresses {
            let ok = p.addresses.iter().any(|x| {
                let zip = |z: &Option<String>| {
                    z.as_deref()
                        .map(|z| digits(z).chars().take(5).collect::<String>())
                };
                (a.zip.is_none() || zip(&a.zip) == zip(&x.zip_or_postal_code))
                    && (a.line1.is_none()
                        || a.line1.as_deref().map(fold) == x.address_line1.as_deref().map(fold))
                    && (a.city.is_none()
                        || a.city.as_deref().map(fold) == x.city.as_deref().map(fold))
            });
            if !ok {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_numbers_follow_vans_pattern() {
        assert_eq!(us_number("(617) 555-0101").as_deref(), Some("6175550101"));
        assert_eq!(us_number("1-617-555-0101").as_deref(), Some("6175550101"));
        assert_eq!(us_number("0175550101"), None);
        assert_eq!(us_number("6195150101").as_deref(), Some("6195150101"));
        assert_eq!(us_number("6191150101"), None, "exchange starts 2-9");
        assert!(search_phone_valid("6175550101"));
        assert!(!search_phone_valid("617-555-0101"));
    }

    #[test]
    fn minimum_combinations() {
        let parse = |v: Value| parse_input(&v).unwrap();
        assert!(parse(json!({"emails":[{"email":"a@b.co"}]})).meets_minimum(false));
        assert!(!parse(json!({"firstName":"A","lastName":"B"})).meets_minimum(true));
        assert!(
            parse(json!({"firstName":"A","lastName":"B","phones":[{"phoneNumber":"6175550101"}]}))
                .meets_minimum(false)
        );
        assert!(!parse(json!({"phones":[{"phoneNumber":"6175550101"}]})).meets_minimum(false));
        assert!(parse(json!({"phones":[{"phoneNumber":"6175550101"}]})).meets_minimum(true));
        assert!(
            !parse(
                json!({"firstName":"A","lastName":"B","addresses":[{"zipOrPostalCode":"02139"}]})
            )
            .meets_minimum(true)
        );
        assert!(parse(json!({"firstName":"A","lastName":"B","dateOfBirth":"1990-01-01","addresses":[{"zipOrPostalCode":"02139"}]})).meets_minimum(true));
        assert!(parse(json!({"firstName":"A","lastName":"B","addresses":[{"addressLine1":"12 Main St","zipOrPostalCode":"02139"}]})).meets_minimum(true));
    }

    #[test]
    fn folding_ignores_case_and_accents() {
        assert_eq!(fold(" José "), "jose");
        assert_eq!(fold("MÜLLER"), "muller");
    }
}
