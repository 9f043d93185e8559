//! The backend-neutral store suite: the same tests on SQLite and, with
//! `FERRY_TEST_DATABASE_URL=postgres://…`, on PostgreSQL.

use ferry_core::contact::{ContactWrite, CustomFieldDef, FieldKind, Raw};
use ferry_core::message::{Channel, Direction, MessageType};
use ferry_core::run::{RunStatus, SyncDirection, Trigger};
use ferry_core::tenancy::Role;
use ferry_store::testing::{TestStore, fresh_store};
use ferry_store::*;
use serde_json::json;

async fn setup() -> (TestStore, Institution) {
    let s = fresh_store().await;
    let inst = s
        .create_institution("state-u", "State University", None)
        .await
        .unwrap();
    (s, inst)
}

async fn schema(s: &Store, inst: i64) -> ferry_core::contact::FieldSchema {
    s.field_schema(inst).await.unwrap()
}

async fn write(s: &Store, inst: i64, pairs: &[(&str, &str)]) -> ContactWrite {
    ContactWrite::parse(
        &schema(s, inst).await,
        pairs.iter().map(|(k, v)| (*k, Raw::Str(v))),
    )
    .unwrap()
}

async fn create(s: &Store, inst: i64, first: &str, phone: &str, crm: Option<&str>) -> i64 {
    let mut pairs = vec![
        ("first_name", first),
        ("last_name", "Tester"),
        ("phone", phone),
    ];
    if let Some(c) = crm {
        pairs.push(("crm_id", c));
    }
    let w = write(s, inst, &pairs).await;
    s.apply_contact_writes(inst, &[w], WriteKind::Create)
        .await
        .unwrap()
        .remove(0)
        .unwrap()
        .contact_id
}

#[tokio::test]
async fn migrations_run_once() {
    let s = fresh_store().await;
    assert!(
        s.migrate().await.unwrap().is_empty(),
        "a second migrate applies nothing"
    );
}

#[tokio::test]
async fn institutions_have_unique_valid_slugs() {
    let (s, inst) = setup().await;
    assert_eq!(inst.time_zone, "America/New_York");
    assert!(matches!(
        s.create_institution("state-u", "Again", None).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_institution("Bad Slug", "X", None).await,
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        s.create_institution("ok-slug", "X", Some("Nowhere/Zone"))
            .await,
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(
        s.institution_by_slug("state-u").await.unwrap().unwrap().id,
        inst.id
    );
}

#[tokio::test]
async fn logins_tokens_and_sessions() {
    let (s, inst) = setup().await;
    let other = s
        .create_institution("other-u", "Other", None)
        .await
        .unwrap();
    let u = s
        .create_user("Admin@State.edu", "correct horse battery")
        .await
        .unwrap();
    assert_eq!(u.email, "admin@state.edu");
    assert!(matches!(
        s.create_user("admin@state.edu", "another long password")
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_user("x@state.edu", "short").await,
        Err(StoreError::Invalid { .. })
    ));
    s.grant_role(u.id, inst.id, Role::Admin).await.unwrap();
    assert!(
        s.verify_login("ADMIN@state.edu", "correct horse battery")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.verify_login("admin@state.edu", "wrong password!!")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.verify_login("nobody@state.edu", "correct horse battery")
            .await
            .unwrap()
            .is_none()
    );

    let cookie = s.create_session(u.id, inst.id).await.unwrap();
    let sess = s.session(&cookie).await.unwrap().unwrap();
    assert_eq!(sess.principal.institution.id, inst.id);
    assert_eq!(sess.principal.role, Role::Admin);
    assert!(sess.csrf_token.len() >= 32);
    // A session in an institution the user does not belong to resolves to nothing.
    let stray = s.create_session(u.id, other.id).await.unwrap();
    assert!(s.session(&stray).await.unwrap().is_none());
    s.delete_session(&cookie).await.unwrap();
    assert!(s.session(&cookie).await.unwrap().is_none());

    let (tok, secret) = s
        .create_api_token(inst.id, Role::Viewer, "ci")
        .await
        .unwrap();
    assert!(secret.starts_with("fry_"));
    let p = s.authenticate_token(&secret).await.unwrap().unwrap();
    assert_eq!(
        (p.institution.id, p.role, p.token_id),
        (inst.id, Role::Viewer, Some(tok.id))
    );
    assert!(
        s.authenticate_token("fry_not-a-token")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn create_edit_archive_and_the_change_sequence() {
    let (s, inst) = setup().await;
    let a = create(&s, inst.id, "Ana", "6175550101", Some("C-1")).await;
    let seq1 = s.contact(inst.id, a).await.unwrap().change_seq;
    // Same phone again on create: refused, nothing written.
    let dup = write(
        &s,
        inst.id,
        &[
            ("first_name", "X"),
            ("last_name", "Y"),
            ("phone", "(617) 555-0101"),
        ],
    )
    .await;
    let out = s
        .apply_contact_writes(inst.id, &[dup], WriteKind::Create)
        .await
        .unwrap();
    assert_eq!(out[0].as_ref().unwrap_err().code, "phone_in_use");
    assert_eq!(s.count_contacts(inst.id).await.unwrap(), 1);

    let mut edit = write(
        &s,
        inst.id,
        &[("preferred_name", "Annie"), ("crm_id", "UNSET")],
    )
    .await;
    edit.platform_id = Some(a);
    let out = s
        .apply_contact_writes(inst.id, &[edit.clone()], WriteKind::Edit)
        .await
        .unwrap();
    assert_eq!(out[0].as_ref().unwrap().action, AppliedAction::Updated);
    let c = s.contact(inst.id, a).await.unwrap();
    assert_eq!(c.data.preferred_name.as_deref(), Some("Annie"));
    assert_eq!(c.data.crm_id, None, "UNSET cleared the CRM ID");
    assert!(c.change_seq > seq1);
    // The same edit again changes nothing and takes no sequence.
    let out = s
        .apply_contact_writes(inst.id, &[edit], WriteKind::Edit)
        .await
        .unwrap();
    assert_eq!(out[0].as_ref().unwrap().action, AppliedAction::Unchanged);
    assert_eq!(
        s.contact(inst.id, a).await.unwrap().change_seq,
        c.change_seq
    );

    let archived = s.set_archived(inst.id, a, true).await.unwrap();
    assert!(archived.data.archived && archived.change_seq > c.change_seq);
    // An edit leaves it archived; a re-import un-archives it.
    let mut edit = write(&s, inst.id, &[("last_name", "Diaz")]).await;
    edit.platform_id = Some(a);
    s.apply_contact_writes(inst.id, &[edit], WriteKind::Edit)
        .await
        .unwrap();
    assert!(s.contact(inst.id, a).await.unwrap().data.archived);
    let again = write(
        &s,
        inst.id,
        &[("phone", "6175550101"), ("first_name", "Ana")],
    )
    .await;
    let out = s
        .apply_contact_writes(inst.id, &[again], WriteKind::Import)
        .await
        .unwrap();
    assert_eq!(out[0].as_ref().unwrap().contact_id, a);
    assert!(!s.contact(inst.id, a).await.unwrap().data.archived);
    assert_eq!(
        s.current_change_seq(inst.id).await.unwrap(),
        s.contact(inst.id, a).await.unwrap().change_seq
    );
}

#[tokio::test]
async fn import_matching_follows_the_seed() {
    let (s, inst) = setup().await;
    let a = create(&s, inst.id, "Ana", "6175550101", Some("C-1")).await;
    let b = create(&s, inst.id, "Ben", "6175550102", Some("C-2")).await;
    let rows = vec![
        // Matched by CRM ID: name updates, the phone is not rewritten.
        write(&s, inst.id, &[("crm_id", "C-1"), ("first_name", "Anita")]).await,
        // CRM ID of A with B's phone: conflict, skipped.
        write(
            &s,
            inst.id,
            &[
                ("crm_id", "C-1"),
                ("phone", "6175550102"),
                ("first_name", "Nope"),
            ],
        )
        .await,
        // Platform ID not found: error.
        ContactWrite {
            platform_id: Some(999_999),
            ..write(&s, inst.id, &[("first_name", "Ghost")]).await
        },
        // New: created, and a later row of the same batch matches it by phone.
        write(
            &s,
            inst.id,
            &[
                ("first_name", "Cy"),
                ("last_name", "New"),
                ("phone", "6175550103"),
            ],
        )
        .await,
        write(
            &s,
            inst.id,
            &[("phone", "6175550103"), ("enrollment_id", "E-3")],
        )
        .await,
        // Missing required fields for a new contact.
        write(
            &s,
            inst.id,
            &[("first_name", "Dee"), ("phone", "6175550104")],
        )
        .await,
    ];
    let out = s
        .apply_contact_writes(inst.id, &rows, WriteKind::Import)
        .await
        .unwrap();
    assert_eq!(out[0].as_ref().unwrap().contact_id, a);
    assert_eq!(out[1].as_ref().unwrap_err().code, "match_conflict");
    assert_eq!(out[2].as_ref().unwrap_err().code, "platform_id_not_found");
    let new_id = out[3].as_ref().unwrap().contact_id;
    assert_eq!(out[3].as_ref().unwrap().action, AppliedAction::Created);
    assert_eq!(out[4].as_ref().unwrap().contact_id, new_id);
    assert_eq!(out[4].as_ref().unwrap().action, AppliedAction::Updated);
    assert_eq!(out[5].as_ref().unwrap_err().code, "missing_required_field");
    let ca = s.contact(inst.id, a).await.unwrap();
    assert_eq!(ca.data.first_name.as_deref(), Some("Anita"));
    assert_eq!(
        s.contact(inst.id, b)
            .await
            .unwrap()
            .data
            .first_name
            .as_deref(),
        Some("Ben"),
        "the conflicting row changed nothing"
    );
    assert_eq!(
        s.contact(inst.id, new_id)
            .await
            .unwrap()
            .data
            .enrollment_id
            .as_deref(),
        Some("E-3")
    );
    assert_eq!(s.count_contacts(inst.id).await.unwrap(), 3);
}

#[tokio::test]
async fn swapping_phones_in_one_batch_applies_what_it_can() {
    let (s, inst) = setup().await;
    let a = create(&s, inst.id, "Ana", "6175550101", None).await;
    let b = create(&s, inst.id, "Ben", "6175550102", None).await;
    let mut to_b = write(&s, inst.id, &[("phone", "6175550102")]).await;
    to_b.platform_id = Some(a);
    let mut to_a = write(&s, inst.id, &[("phone", "6175550101")]).await;
    to_a.platform_id = Some(b);
    let out = s
        .apply_contact_writes(inst.id, &[to_b, to_a], WriteKind::Edit)
        .await
        .unwrap();
    // Each names a phone the other still holds: both are refused, nothing half-applied.
    assert_eq!(out[0].as_ref().unwrap_err().code, "phone_in_use");
    assert_eq!(out[1].as_ref().unwrap_err().code, "phone_in_use");
    assert_eq!(
        s.contact(inst.id, a)
            .await
            .unwrap()
            .data
            .phone
            .unwrap()
            .as_str(),
        "+16175550101"
    );
}

#[tokio::test]
async fn institutions_never_see_each_other() {
    let (s, inst) = setup().await;
    let other = s
        .create_institution("other-u", "Other", None)
        .await
        .unwrap();
    let a = create(&s, inst.id, "Ana", "6175550101", Some("C-1")).await;
    assert!(matches!(
        s.contact(other.id, a).await,
        Err(StoreError::NotFound)
    ));
    // The same phone and CRM ID are free in another institution.
    let b = create(&s, other.id, "Ana", "6175550101", Some("C-1")).await;
    assert_ne!(a, b);
    let w = ContactWrite {
        platform_id: Some(a),
        ..write(&s, other.id, &[("first_name", "Hijack")]).await
    };
    let out = s
        .apply_contact_writes(other.id, &[w], WriteKind::Import)
        .await
        .unwrap();
    assert_eq!(out[0].as_ref().unwrap_err().code, "platform_id_not_found");
    assert_eq!(
        s.list_contacts(
            other.id,
            &ContactQuery {
                limit: 50,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .contacts
        .len(),
        1
    );
    assert!(s.set_archived(other.id, a, true).await.is_err());
}

#[tokio::test]
async fn listing_searching_and_the_sync_query() {
    let (s, inst) = setup().await;
    s.create_custom_field(
        inst.id,
        &CustomFieldDef {
            name: "major".into(),
            label: "Major".into(),
            kind: FieldKind::Text,
        },
    )
    .await
    .unwrap();
    for i in 0..25 {
        let phone = format!("61755501{i:02}");
        let name = if i == 7 { "Zelda" } else { "Sam" };
        let test = if i % 10 == 0 { "yes" } else { "no" };
        let w = write(
            &s,
            inst.id,
            &[
                ("first_name", name),
                ("last_name", "Li"),
                ("phone", &phone),
                ("test_user", test),
                ("major", "Biology"),
            ],
        )
        .await;
        s.apply_contact_writes(inst.id, &[w], WriteKind::Import)
            .await
            .unwrap()
            .remove(0)
            .unwrap();
    }
    let page1 = s
        .list_contacts(
            inst.id,
            &ContactQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page1.contacts.len(), 10);
    let page3 = s
        .list_contacts(
            inst.id,
            &ContactQuery {
                limit: 10,
                after: Some(page1.next_after.unwrap()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let page3 = s
        .list_contacts(
            inst.id,
            &ContactQuery {
                limit: 10,
                after: page3.next_after,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page3.contacts.len(), 5);
    assert!(page3.next_after.is_none());
    let z = s
        .list_contacts(
            inst.id,
            &ContactQuery {
                q: Some("zEL".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(z.contacts.len(), 1);
    let by_phone = s
        .list_contacts(
            inst.id,
            &ContactQuery {
                q: Some("(617) 555-0107".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        by_phone.contacts[0].data.first_name.as_deref(),
        Some("Zelda")
    );
    let pct = s
        .list_contacts(
            inst.id,
            &ContactQuery {
                q: Some("%".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        pct.contacts.is_empty(),
        "LIKE wildcards in the query are literal"
    );
    let tests = s
        .list_contacts(
            inst.id,
            &ContactQuery {
                test_user: Some(true),
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tests.contacts.len(), 3, "test users are stored and listed");
    let synced = s.contacts_for_sync(inst.id, 0, 100).await.unwrap();
    assert_eq!(synced.len(), 22, "the sync query leaves test users out");
    assert!(synced.windows(2).all(|w| w[0].change_seq < w[1].change_seq));
    assert_eq!(synced[0].data.custom["major"], json!("Biology"));
    let later = s
        .contacts_for_sync(inst.id, synced[10].change_seq, 100)
        .await
        .unwrap();
    assert_eq!(later.len(), 11);
    let future = s
        .list_contacts(
            inst.id,
            &ContactQuery {
                updated_since: Some(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60)),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(future.contacts.is_empty());
}

#[tokio::test]
async fn csv_import_reports_rows_and_refuses_bad_files_whole() {
    let (s, inst) = setup().await;
    s.create_custom_field(
        inst.id,
        &CustomFieldDef {
            name: "gpa".into(),
            label: "GPA".into(),
            kind: FieldKind::Number,
        },
    )
    .await
    .unwrap();
    let csv = "\u{feff}First_Name,last_name,phone,gpa\nAna,Diaz,(617) 555-0101,3.9\nBen,Ray,not a phone,3.1\nCy,Ng,6175550103\nDee,Fox,6175550104,high\n\"Eve\",\"O'Neil, Jr.\",6175550105,2.5\n";
    let report = s
        .import_contacts_csv(inst.id, csv.as_bytes().to_vec(), |_| {})
        .await
        .unwrap();
    assert_eq!(
        (report.created, report.updated, report.skipped),
        (2, 0, 3),
        "{report:?}"
    );
    let codes: Vec<(u64, &str)> = report.errors.iter().map(|e| (e.row, e.code)).collect();
    assert_eq!(
        codes,
        vec![
            (3, "invalid_phone"),
            (4, "ragged_row"),
            (5, "invalid_number")
        ]
    );
    // Re-import: matched by phone, nothing changes.
    let report = s
        .import_contacts_csv(
            inst.id,
            "phone,first_name\n6175550101,Ana\n".as_bytes().to_vec(),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(report.unchanged, 1);

    let before = s.count_contacts(inst.id).await.unwrap();
    for (bad, code) in [
        (
            "first_name,shoe_size\nA,9\n".as_bytes().to_vec(),
            "unknown_field",
        ),
        (
            b"first_name,phone\n\xff\xfe,6175550109\n".to_vec(),
            "invalid_encoding",
        ),
        ("phone,phone\n1,2\n".as_bytes().to_vec(), "duplicate_column"),
        (Vec::new(), "bad_request"),
    ] {
        match s.import_contacts_csv(inst.id, bad, |_| {}).await {
            Err(ImportError::File { code: c, .. }) => assert_eq!(c, code),
            other => panic!("expected {code}, got {other:?}"),
        }
    }
    assert_eq!(
        s.count_contacts(inst.id).await.unwrap(),
        before,
        "refused files change nothing"
    );
}

#[tokio::test]
async fn an_unbalanced_quote_costs_its_row_only_and_is_reported_where_it_began() {
    let (s, inst) = setup().await;
    let csv = "first_name,last_name,phone\nAna,Diaz,6175550101\nBen,\"Ray,6175550102\nCy,Ng,6175550103\nDee,Fox,6175550104\n";
    let report = s
        .import_contacts_csv(inst.id, csv.as_bytes().to_vec(), |_| {})
        .await
        .unwrap();
    assert_eq!((report.created, report.skipped), (3, 1), "{report:?}");
    let e = &report.errors[0];
    assert_eq!((e.row, e.code), (3, "unclosed_quote"), "{e:?}");
    assert!(
        e.message.contains("\"last_name\"") && e.message.contains("line 4"),
        "names the column and where the import went on: {}",
        e.message
    );
}

#[tokio::test]
async fn a_conflict_with_a_contact_the_same_file_created_names_its_row() {
    let (s, inst) = setup().await;
    let csv = "first_name,last_name,phone,crm_id\nAna,Diaz,6175550101,A1\nAna,Diaz,6175550102,A1\n";
    let report = s
        .import_contacts_csv(inst.id, csv.as_bytes().to_vec(), |_| {})
        .await
        .unwrap();
    assert_eq!((report.created, report.skipped), (1, 1), "{report:?}");
    let e = &report.errors[0];
    assert_eq!((e.row, e.code), (3, "match_conflict"));
    assert_eq!(
        e.message,
        "the contact created by row 2 of this file has this CRM ID but a different phone"
    );
}

#[tokio::test]
async fn messages_take_a_monotonic_sequence() {
    let (s, inst) = setup().await;
    let other = s
        .create_institution("other-u", "Other", None)
        .await
        .unwrap();
    let a = create(&s, inst.id, "Ana", "6175550101", None).await;
    let foreign = create(&s, other.id, "Zed", "6175550199", None).await;
    let msg = |contact_id, channel, direction| NewMessage {
        contact_id,
        channel,
        message_type: MessageType::AiAgent,
        direction,
        body: "Hi".into(),
        sent_at: jiff::Timestamp::now(),
    };
    let first = s
        .insert_messages(
            inst.id,
            &[
                msg(a, Channel::Sms, Direction::Outgoing),
                msg(a, Channel::WebChat, Direction::Incoming),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|m| m.sequence).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let err = s
        .insert_messages(
            inst.id,
            &[
                msg(a, Channel::Sms, Direction::Outgoing),
                msg(foreign, Channel::Sms, Direction::Outgoing),
            ],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid { ref field, .. } if field == "messages[1].contact_id"),
        "{err:?}"
    );
    let more = s
        .insert_messages(inst.id, &[msg(a, Channel::Email, Direction::Outgoing)])
        .await
        .unwrap();
    assert_eq!(more[0].sequence, 3, "the refused batch took no sequence");
    let sms = s
        .list_messages(
            inst.id,
            &MessageQuery {
                channels: vec![Channel::Sms],
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(sms.len(), 1);
    let after = s
        .list_messages(
            inst.id,
            &MessageQuery {
                after_sequence: Some(1),
                up_to_sequence: Some(2),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        after.iter().map(|m| m.sequence).collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(s.current_message_seq(inst.id).await.unwrap(), 3);
    assert_eq!(s.current_message_seq(other.id).await.unwrap(), 0);
}

#[tokio::test]
async fn messages_filter_by_sent_time_page_newest_first_and_count_by_kind() {
    let (s, inst) = setup().await;
    let a = create(&s, inst.id, "Ana", "6175550101", None).await;
    let b = create(&s, inst.id, "Ben", "6175550102", None).await;
    let at = |t: &str| t.parse::<jiff::Timestamp>().unwrap();
    let msg = |contact_id, channel, message_type, direction, sent_at: &str| NewMessage {
        contact_id,
        channel,
        message_type,
        direction,
        body: "Hi".into(),
        sent_at: at(sent_at),
    };
    s.insert_messages(
        inst.id,
        &[
            msg(
                a,
                Channel::Sms,
                MessageType::AiAgent,
                Direction::Outgoing,
                "2026-09-01T10:00:00Z",
            ),
            msg(
                a,
                Channel::Sms,
                MessageType::AiAgent,
                Direction::Incoming,
                "2026-09-02T10:00:00Z",
            ),
            msg(
                b,
                Channel::WebChat,
                MessageType::LiveChat,
                Direction::Incoming,
                "2026-09-03T10:00:00Z",
            ),
            msg(
                b,
                Channel::Sms,
                MessageType::Campaign,
                Direction::Outgoing,
                "2026-09-04T10:00:00Z",
            ),
        ],
    )
    .await
    .unwrap();
    let q = MessageQuery {
        sent_from: Some(at("2026-09-02T00:00:00Z")),
        sent_to: Some(at("2026-09-03T23:59:59Z")),
        newest_first: true,
        limit: 10,
        ..Default::default()
    };
    let page = s.list_messages(inst.id, &q).await.unwrap();
    assert_eq!(
        page.iter().map(|m| m.sequence).collect::<Vec<_>>(),
        vec![3, 2]
    );
    let older = s
        .list_messages(
            inst.id,
            &MessageQuery {
                before_sequence: Some(3),
                ..q.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        older.iter().map(|m| m.sequence).collect::<Vec<_>>(),
        vec![2]
    );
    let counts = s
        .count_messages(
            inst.id,
            &MessageQuery {
                directions: vec![Direction::Incoming, Direction::Outgoing],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(counts.total, 4);
    assert_eq!(
        counts.channels,
        vec![(Channel::Sms, 3), (Channel::WebChat, 1)]
    );
    assert_eq!(
        counts.types,
        vec![
            (MessageType::AiAgent, 2),
            (MessageType::LiveChat, 1),
            (MessageType::Campaign, 1)
        ]
    );
    assert_eq!(
        counts.directions,
        vec![(Direction::Incoming, 2), (Direction::Outgoing, 2)]
    );
    let bens = s
        .count_messages(
            inst.id,
            &MessageQuery {
                contact_id: Some(b),
                sent_from: Some(at("2026-09-04T00:00:00Z")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(bens.total, 1);
}

#[tokio::test]
async fn sync_log_rows_of_one_run() {
    let (s, inst) = setup().await;
    let i = integration(&s, inst.id, "A").await;
    let run = s
        .enqueue_run(&NewRun {
            institution_id: inst.id,
            integration_id: i.id,
            kind: "test_kind".into(),
            trigger: Trigger::Manual,
            scheduled_for: None,
        })
        .await
        .unwrap()
        .unwrap();
    let row = |run_id, message: &str| NewSyncLog {
        integration_id: Some(i.id),
        run_id,
        direction: SyncDirection::Outgoing,
        contact_id: None,
        code: "invalid_email".into(),
        message: message.into(),
    };
    s.add_sync_log(
        inst.id,
        &[row(Some(run.id), "in the run"), row(None, "outside")],
    )
    .await
    .unwrap();
    let of_run = s
        .list_sync_log(
            inst.id,
            &SyncLogQuery {
                run_id: Some(run.id),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        of_run
            .iter()
            .map(|r| r.message.as_str())
            .collect::<Vec<_>>(),
        vec!["in the run"]
    );
}

#[tokio::test]
async fn integration_secrets_are_sealed_and_write_only() {
    let (s, inst) = setup().await;
    let mut secrets = serde_json::Map::new();
    secrets.insert("password".into(), json!("hunter2-very-secret"));
    let i = s
        .create_integration(
            inst.id,
            NewIntegration {
                kind: "test_kind".into(),
                name: "Nightly".into(),
                description: String::new(),
                enabled: true,
                config: json!({"host": "sftp.example.edu"}),
                secrets: Some(secrets),
            },
        )
        .await
        .unwrap();
    assert_eq!(i.secrets_set, vec!["password".to_string()]);
    assert!(
        !serde_json::to_string(&i).unwrap().contains("hunter2"),
        "the record never carries the value"
    );
    assert_eq!(
        s.integration_secrets(inst.id, i.id).await.unwrap()["password"],
        json!("hunter2-very-secret")
    );
    // The database holds ciphertext only.
    let raw: Vec<u8> = sqlx::query_scalar::<sqlx::Any, Vec<u8>>("SELECT secrets FROM integrations")
        .fetch_one(&sqlx::AnyPool::connect(&s.url).await.unwrap())
        .await
        .unwrap();
    assert!(!raw.windows(7).any(|w| w == b"hunter2"));
    let mut change = serde_json::Map::new();
    change.insert("private_key".into(), json!("KEY"));
    change.insert("password".into(), serde_json::Value::Null);
    let u = s
        .update_integration(
            inst.id,
            i.id,
            IntegrationUpdate {
                enabled: Some(false),
                secrets: Some(change),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u.secrets_set, vec!["private_key".to_string()]);
    assert!(!u.enabled);
    assert_eq!(u.name, "Nightly");
    let other = s
        .create_institution("other-u", "Other", None)
        .await
        .unwrap();
    assert!(matches!(
        s.integration(other.id, i.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.integration_secrets(other.id, i.id).await,
        Err(StoreError::NotFound)
    ));
    s.delete_integration(inst.id, i.id).await.unwrap();
    assert!(s.list_integrations(inst.id).await.unwrap().is_empty());
}

async fn integration(s: &Store, inst: i64, name: &str) -> Integration {
    s.create_integration(
        inst,
        NewIntegration {
            kind: "test_kind".into(),
            name: name.into(),
            description: String::new(),
            enabled: true,
            config: json!({}),
            secrets: None,
        },
    )
    .await
    .unwrap()
}

fn new_run(i: &Integration, trigger: Trigger, slot: Option<&str>) -> NewRun {
    NewRun {
        institution_id: i.institution_id,
        integration_id: i.id,
        kind: i.kind.clone(),
        trigger,
        scheduled_for: slot.map(|s| s.parse().unwrap()),
    }
}

#[tokio::test]
async fn runs_queue_claim_heartbeat_finish() {
    let (s, inst) = setup().await;
    let i = integration(&s, inst.id, "A").await;
    let r1 = s
        .enqueue_run(&new_run(
            &i,
            Trigger::Scheduled,
            Some("2026-07-01T04:00:00Z"),
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(
        s.enqueue_run(&new_run(
            &i,
            Trigger::Scheduled,
            Some("2026-07-01T04:00:00Z")
        ))
        .await
        .unwrap()
        .is_none(),
        "one run per slot"
    );
    let r2 = s
        .enqueue_run(&new_run(&i, Trigger::Manual, None))
        .await
        .unwrap()
        .unwrap();
    assert!(
        s.enqueue_run(&new_run(&i, Trigger::Manual, None))
            .await
            .unwrap()
            .is_none(),
        "one queued manual run at a time"
    );

    let claimed = s.claim_run("w1").await.unwrap().unwrap();
    assert_eq!(
        (claimed.id, claimed.status, claimed.attempt),
        (r1.id, RunStatus::Running, 1)
    );
    assert!(
        s.claim_run("w2").await.unwrap().is_none(),
        "never two runs of one integration at once"
    );
    assert!(s.heartbeat_run(r1.id, "w1").await.unwrap());
    assert!(!s.heartbeat_run(r1.id, "w2").await.unwrap());
    let outcome = RunOutcome {
        status: RunStatus::Success,
        rows: 42,
        error: None,
        detail: json!({"file": "x.csv"}),
        credentials_refused: false,
    };
    assert!(
        !s.finish_run(r1.id, "w2", &outcome).await.unwrap(),
        "only the lease holder finishes"
    );
    assert!(s.finish_run(r1.id, "w1", &outcome).await.unwrap());
    let done = s.run(inst.id, r1.id).await.unwrap();
    assert_eq!(
        (done.status, done.rows, done.detail["file"].clone()),
        (RunStatus::Success, 42, json!("x.csv"))
    );
    assert!(done.finished_at.is_some());

    let c2 = s.claim_run("w2").await.unwrap().unwrap();
    assert_eq!(c2.id, r2.id);
    assert!(s.release_run(r2.id, "w2").await.unwrap());
    assert_eq!(
        s.run(inst.id, r2.id).await.unwrap().status,
        RunStatus::Queued
    );

    let listed = s
        .list_runs(
            inst.id,
            &RunQuery {
                status: Some(RunStatus::Success),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let other = s
        .create_institution("other-u", "Other", None)
        .await
        .unwrap();
    assert!(
        s.list_runs(
            other.id,
            &RunQuery {
                limit: 10,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .is_empty()
    );
    assert!(
        s.enqueue_run(&NewRun {
            institution_id: other.id,
            ..new_run(&i, Trigger::Manual, None)
        })
        .await
        .unwrap()
        .is_none(),
        "no runs across institutions"
    );
}

#[tokio::test]
async fn stale_runs_are_requeued_then_failed() {
    let (s, inst) = setup().await;
    let i = integration(&s, inst.id, "A").await;
    let r = s
        .enqueue_run(&new_run(&i, Trigger::Manual, None))
        .await
        .unwrap()
        .unwrap();
    s.claim_run("dead-worker").await.unwrap().unwrap();
    let future = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
    assert_eq!(s.requeue_stale_runs(future, 2).await.unwrap(), (1, 0));
    let again = s.claim_run("w2").await.unwrap().unwrap();
    assert_eq!((again.id, again.attempt), (r.id, 2));
    assert!(
        !s.heartbeat_run(r.id, "dead-worker").await.unwrap(),
        "the old worker lost its lease"
    );
    assert_eq!(s.requeue_stale_runs(future, 2).await.unwrap(), (0, 1));
    let failed = s.run(inst.id, r.id).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert!(failed.error.unwrap().contains("stopped responding"));
}

#[tokio::test]
async fn concurrent_claims_never_share_a_run() {
    let (s, inst) = setup().await;
    let mut expected = Vec::new();
    for n in 0..12 {
        let i = integration(&s, inst.id, &format!("I{n}")).await;
        expected.push(
            s.enqueue_run(&new_run(&i, Trigger::Manual, None))
                .await
                .unwrap()
                .unwrap()
                .id,
        );
    }
    let mut tasks = Vec::new();
    for w in 0..6 {
        let s = s.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..6 {
                if let Some(r) = s.claim_run(&format!("w{w}")).await.unwrap() {
                    got.push(r.id);
                }
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, expected, "every run claimed exactly once");
}

#[tokio::test]
async fn sync_log_rows_filter_by_time_integration_direction() {
    let (s, inst) = setup().await;
    let i = integration(&s, inst.id, "A").await;
    let a = create(&s, inst.id, "Ana", "6175550101", None).await;
    let t0 = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
    s.add_sync_log(
        inst.id,
        &[
            NewSyncLog {
                integration_id: Some(i.id),
                run_id: None,
                direction: SyncDirection::Incoming,
                contact_id: Some(a),
                code: "match_conflict".into(),
                message: "m1".into(),
            },
            NewSyncLog {
                integration_id: Some(i.id),
                run_id: None,
                direction: SyncDirection::Outgoing,
                contact_id: None,
                code: "invalid_email".into(),
                message: "m2".into(),
            },
        ],
    )
    .await
    .unwrap();
    let all = s
        .list_sync_log(
            inst.id,
            &SyncLogQuery {
                from: Some(t0),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let inc = s
        .list_sync_log(
            inst.id,
            &SyncLogQuery {
                direction: Some(SyncDirection::Incoming),
                integration_id: Some(i.id),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (inc.len(), inc[0].contact_id, inc[0].code.as_str()),
        (1, Some(a), "match_conflict")
    );
    let none = s
        .list_sync_log(
            inst.id,
            &SyncLogQuery {
                to: Some(t0),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_foreign_keys() {
    let s = fresh_store().await;
    if s.backend() != Backend::Sqlite {
        return;
    }
    let pool = sqlx::AnyPool::connect(&s.url).await.unwrap();
    let mode: String = sqlx::query_scalar::<sqlx::Any, String>("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal", "the store switched the file to WAL");
    // The store's own connections enforce foreign keys: deleting an integration cascades to its runs.
    let inst = s.create_institution("fk-u", "FK", None).await.unwrap();
    let i = integration(&s, inst.id, "A").await;
    s.enqueue_run(&new_run(&i, Trigger::Manual, None))
        .await
        .unwrap()
        .unwrap();
    s.delete_integration(inst.id, i.id).await.unwrap();
    assert!(
        s.list_runs(
            inst.id,
            &RunQuery {
                limit: 10,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .is_empty()
    );
}

#[tokio::test]
async fn a_batch_of_creates_reports_each_new_contacts_own_id() {
    let (s, inst) = setup().await;
    create(&s, inst.id, "Before", "6175550100", None).await;
    let mut writes = Vec::new();
    for i in 1..=40 {
        writes.push(
            write(
                &s,
                inst.id,
                &[
                    ("first_name", &format!("N{i}")),
                    ("last_name", "B"),
                    ("phone", &format!("61755501{i:02}")),
                ],
            )
            .await,
        );
    }
    let out = s
        .apply_contact_writes(inst.id, &writes, WriteKind::Import)
        .await
        .unwrap();
    for (i, o) in out.iter().enumerate() {
        let c = s
            .contact(inst.id, o.as_ref().unwrap().contact_id)
            .await
            .unwrap();
        assert_eq!(
            c.data.first_name.as_deref(),
            Some(format!("N{}", i + 1).as_str())
        );
    }
}

/// Imports skip looking up keys they know are absent (SQLite keeps a filter of the keys it wrote).
/// A key another connection wrote in between, or one of an institution too large to scan, is
/// still found.
#[tokio::test]
async fn import_batches_find_keys_written_elsewhere_and_in_large_institutions() {
    let (s, inst) = setup().await;
    let import = |w: ContactWrite| {
        let s = &s;
        async move {
            s.apply_contact_writes(inst.id, &[w], WriteKind::Import)
                .await
                .unwrap()
                .remove(0)
        }
    };
    let pairs = |first: &'static str, phone: &'static str, crm: &'static str| {
        let mut p = vec![
            ("first_name", first),
            ("last_name", "Diaz"),
            ("phone", phone),
        ];
        if !crm.is_empty() {
            p.push(("crm_id", crm));
        }
        p
    };
    let ana = import(write(&s, inst.id, &pairs("Ana", "6175550101", "")).await)
        .await
        .unwrap();
    assert_eq!(ana.action, AppliedAction::Created);
    // The CRM ID write-back goes through another connection than contact batches.
    assert_eq!(
        s.set_crm_ids(inst.id, &[(ana.contact_id, "CRM-9".into())])
            .await
            .unwrap(),
        vec![true]
    );
    let again = import(write(&s, inst.id, &[("first_name", "Anna"), ("crm_id", "CRM-9")]).await)
        .await
        .unwrap();
    assert_eq!(
        (again.contact_id, again.action),
        (ana.contact_id, AppliedAction::Updated),
        "the CRM ID written by the other connection finds Ana"
    );
    // The phone this batch connection wrote is found too.
    let by_phone = import(write(&s, inst.id, &pairs("Anabel", "6175550101", "")).await)
        .await
        .unwrap();
    assert_eq!(by_phone.contact_id, ana.contact_id);

    // More contacts than the batch has rows: the keys are looked up, not scanned.
    let mut many = Vec::new();
    for i in 2..=6 {
        many.push(create(&s, inst.id, "Many", &format!("61755502{i:02}"), None).await);
    }
    s.set_crm_ids(inst.id, &[(many[0], "CRM-M".into())])
        .await
        .unwrap();
    let many = import(write(&s, inst.id, &pairs("Mo", "6175550204", "")).await)
        .await
        .unwrap();
    assert_eq!(many.action, AppliedAction::Updated);
    assert_eq!(s.count_contacts(inst.id).await.unwrap(), 6);
}

#[tokio::test]
async fn a_chain_of_phone_moves_that_trips_the_index_is_redone_row_by_row() {
    let (s, inst) = setup().await;
    let b = create(&s, inst.id, "Ben", "6175550102", None).await;
    let a = create(&s, inst.id, "Ana", "6175550101", None).await;
    // A leaves 0101 for 0103, then B takes 0101. Written in id order, B's update would come
    // first and collide with A's old phone; the store redoes the chunk one write at a time.
    let mut a_moves = write(&s, inst.id, &[("phone", "6175550103")]).await;
    a_moves.platform_id = Some(a);
    let mut b_moves = write(&s, inst.id, &[("phone", "6175550101")]).await;
    b_moves.platform_id = Some(b);
    let out = s
        .apply_contact_writes(inst.id, &[a_moves, b_moves], WriteKind::Edit)
        .await
        .unwrap();
    assert!(out.iter().all(|o| o.is_ok()), "{out:?}");
    assert_eq!(
        s.contact(inst.id, a)
            .await
            .unwrap()
            .data
            .phone
            .unwrap()
            .as_str(),
        "+16175550103"
    );
    assert_eq!(
        s.contact(inst.id, b)
            .await
            .unwrap()
            .data
            .phone
            .unwrap()
            .as_str(),
        "+16175550101"
    );
}

#[tokio::test]
async fn a_data_dir_with_url_characters_in_its_name_works() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("a%41 b?c#d");
    std::fs::create_dir_all(&odd).unwrap();
    let s = Store::connect(
        &default_sqlite_url(&odd),
        SecretBox::new(MasterKey::generate()),
    )
    .await
    .unwrap();
    s.migrate().await.unwrap();
    let inst = s.create_institution("odd-u", "Odd", None).await.unwrap();
    create(&s, inst.id, "Ana", "6175550101", None).await;
    assert!(
        odd.join("ferry.db").exists(),
        "the database is in the named directory"
    );
    assert_eq!(s.count_contacts(inst.id).await.unwrap(), 1);
}

#[tokio::test]
async fn in_memory_sqlite_is_refused_with_a_reason() {
    let err = Store::connect("sqlite::memory:", SecretBox::new(MasterKey::generate()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UnsupportedUrl(ref m) if m.contains("in-memory")),
        "{err}"
    );
    let err = Store::connect("mysql://x", SecretBox::new(MasterKey::generate()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)));
}

#[tokio::test]
async fn crm_accounts_keep_sealed_tokens_and_oauth_states_work_once() {
    let s = fresh_store().await;
    let inst = s
        .create_institution("state-u", "State University", None)
        .await
        .unwrap();
    let other = s
        .create_institution("other-u", "Other College", None)
        .await
        .unwrap();
    let tokens =
        serde_json::json!({"access_token": "at-1", "refresh_token": "rt-1", "expires_at": 1});
    let a = s
        .upsert_crm_account(inst.id, "hubspot", "24681357", "demo.hubspot.com", &tokens)
        .await
        .unwrap();
    assert_eq!(s.crm_account_tokens(inst.id, a.id).await.unwrap(), tokens);
    // Connected again: the same account, new tokens.
    let newer =
        serde_json::json!({"access_token": "at-2", "refresh_token": "rt-2", "expires_at": 2});
    let again = s
        .upsert_crm_account(inst.id, "hubspot", "24681357", "demo2.hubspot.com", &newer)
        .await
        .unwrap();
    assert_eq!(
        (again.id, again.label.as_str()),
        (a.id, "demo2.hubspot.com")
    );
    assert_eq!(s.crm_accounts(inst.id, "hubspot").await.unwrap().len(), 1);
    assert_eq!(s.crm_account_tokens(inst.id, a.id).await.unwrap(), newer);
    s.set_crm_account_tokens(inst.id, a.id, &tokens)
        .await
        .unwrap();
    assert_eq!(s.crm_account_tokens(inst.id, a.id).await.unwrap(), tokens);
    assert!(
        s.crm_accounts(other.id, "hubspot")
            .await
            .unwrap()
            .is_empty(),
        "accounts stay in their institution"
    );
    assert!(matches!(
        s.crm_account_tokens(other.id, a.id).await,
        Err(ferry_store::StoreError::NotFound)
    ));

    s.create_oauth_state(inst.id, "hubspot", "st-123")
        .await
        .unwrap();
    assert!(
        !s.take_oauth_state(other.id, "hubspot", "st-123")
            .await
            .unwrap(),
        "another institution's state"
    );
    assert!(
        !s.take_oauth_state(inst.id, "hubspot", "st-999")
            .await
            .unwrap()
    );
    assert!(
        s.take_oauth_state(inst.id, "hubspot", "st-123")
            .await
            .unwrap()
    );
    assert!(
        !s.take_oauth_state(inst.id, "hubspot", "st-123")
            .await
            .unwrap(),
        "a state works once"
    );
}

#[tokio::test]
async fn signin_throttling_is_shared_by_every_store_handle() {
    let (s, _) = setup().await;
    // A second handle on the same database stands for another process.
    let other = Store::connect(&s.url, SecretBox::new(MasterKey::generate()))
        .await
        .unwrap();
    let keys = [
        "acct:a@x.edu|192.0.2.1".to_string(),
        "ip:192.0.2.1".to_string(),
    ];
    let delay = |i: usize, n: i64| if i == 0 && n >= 2 { 600 } else { 0 };
    assert_eq!(s.signin_attempt(&keys, 3600, delay).await.unwrap(), None);
    assert_eq!(
        other.signin_attempt(&keys, 3600, delay).await.unwrap(),
        None
    );
    let wait = s.signin_attempt(&keys, 3600, delay).await.unwrap();
    assert!(
        wait.is_some_and(|w| w > jiff::Timestamp::now()),
        "the second failure, counted by the other handle, makes this one wait"
    );
    // Another client of the same account is not affected.
    let elsewhere = [
        "acct:a@x.edu|192.0.2.2".to_string(),
        "ip:192.0.2.2".to_string(),
    ];
    assert_eq!(
        other.signin_attempt(&elsewhere, 3600, delay).await.unwrap(),
        None
    );
    // A success forgets the account's streak at that client.
    s.signin_succeeded(&keys[0], &keys[1], 100).await.unwrap();
    assert_eq!(
        other.signin_attempt(&keys, 3600, delay).await.unwrap(),
        None
    );
    other.close().await;
}

#[tokio::test]
async fn audit_log_pages_and_filters() {
    let (s, inst) = setup().await;
    let user = audit::Actor::user("ana@state.edu", "192.0.2.1");
    for i in 0..5 {
        let kind = if i % 2 == 0 {
            "token.created"
        } else {
            "integration.updated"
        };
        s.record_audit_as(
            &user,
            NewAuditEvent {
                institution_id: Some(inst.id),
                kind: kind.into(),
                target: format!("thing {i}"),
                detail: json!({"n": i, "secrets": {"password": "hunter22"}}),
            },
        )
        .await
        .unwrap();
    }
    s.record_audit_as(
        &audit::Actor::cli(),
        NewAuditEvent {
            institution_id: Some(inst.id),
            kind: "user.role_granted".into(),
            target: "user x".into(),
            detail: json!({}),
        },
    )
    .await
    .unwrap();
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            limit: 2,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let first = s.audit_log(inst.id, &q(|_| {})).await.unwrap();
    assert_eq!(first.entries.len(), 2);
    assert_eq!(first.entries[0].kind, "user.role_granted", "newest first");
    let mut second_q = q(|_| {});
    second_q.before = first.next_before;
    let second = s.audit_log(inst.id, &second_q).await.unwrap();
    assert!(second.entries[0].id < first.entries[1].id);
    let tokens = s
        .audit_log(
            inst.id,
            &q(|q| {
                q.kind = Some("token".into());
                q.limit = 50
            }),
        )
        .await
        .unwrap();
    assert_eq!(tokens.entries.len(), 3);
    assert_eq!(tokens.entries[0].detail["secrets"], "[redacted]");
    let by_ana = s
        .audit_log(
            inst.id,
            &q(|q| {
                q.actor = Some("user:ANA@state.edu".into());
                q.limit = 50
            }),
        )
        .await
        .unwrap();
    assert_eq!(by_ana.entries.len(), 5);
    assert_eq!(by_ana.entries[0].client, "192.0.2.1");
    let future = s
        .audit_log(
            inst.id,
            &q(|q| q.since = Some(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1))),
        )
        .await
        .unwrap();
    assert!(future.entries.is_empty());
}

#[tokio::test]
async fn tokens_expire_are_revoked_and_record_their_use_coarsely() {
    let (s, inst) = setup().await;
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let (token, secret) = s
        .create_api_token_with(inst.id, Role::Viewer, "ci", Some(later))
        .await
        .unwrap();
    assert_eq!(token.last_used_at, None);
    let p = s.authenticate_token(&secret).await.unwrap().unwrap();
    assert_eq!(p.token_name.as_deref(), Some("ci"));
    let first = s.api_tokens(inst.id).await.unwrap()[0].last_used_at;
    assert!(first.is_some());
    s.authenticate_token(&secret).await.unwrap().unwrap();
    assert_eq!(
        s.api_tokens(inst.id).await.unwrap()[0].last_used_at,
        first,
        "a second use within five minutes writes nothing"
    );
    // Expired: moved into the past behind the store's back.
    let pool = sqlx::AnyPool::connect(&s.url).await.unwrap();
    sqlx::query("UPDATE api_tokens SET expires_at = 1 WHERE id = $1")
        .bind(token.id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert!(s.authenticate_token(&secret).await.unwrap().is_none());
    assert!(!s.api_tokens(inst.id).await.unwrap()[0].is_active(jiff::Timestamp::now()));

    let (t2, secret2) = s
        .create_api_token(inst.id, Role::Admin, "deploy")
        .await
        .unwrap();
    let other = s
        .create_institution("other-u", "Other", None)
        .await
        .unwrap();
    assert!(matches!(
        s.revoke_api_token(other.id, t2.id).await,
        Err(StoreError::NotFound)
    ));
    let revoked = s.revoke_api_token(inst.id, t2.id).await.unwrap();
    let again = s.revoke_api_token(inst.id, t2.id).await.unwrap();
    assert_eq!(
        revoked.revoked_at, again.revoked_at,
        "revoking twice changes nothing"
    );
    assert!(s.authenticate_token(&secret2).await.unwrap().is_none());
    assert!(matches!(
        s.create_api_token_with(inst.id, Role::Admin, "  ", None)
            .await,
        Err(StoreError::Invalid { .. })
    ));
}

#[tokio::test]
async fn changes_are_audited_by_the_ambient_actor_in_their_transaction() {
    let (s, inst) = setup().await;
    let admin = audit::Actor::user("root@state.edu", "192.0.2.9");
    audit::acting_as(admin.clone(), async {
        let u = s
            .create_user("ana@state.edu", "a long password 1")
            .await
            .unwrap();
        s.grant_role(u.id, inst.id, Role::Viewer).await.unwrap();
        s.grant_role(u.id, inst.id, Role::Viewer).await.unwrap();
        s.grant_role(u.id, inst.id, Role::Admin).await.unwrap();
        s.set_password(u.id, "another long password").await.unwrap();
        s.upsert_crm_account(
            inst.id,
            "hubspot",
            "123",
            "Portal 123",
            &json!({"access_token": "at-secret"}),
        )
        .await
        .unwrap();
        // A refused change writes no audit row.
        assert!(
            s.create_custom_field(
                inst.id,
                &CustomFieldDef {
                    name: "Bad Name".into(),
                    label: "x".into(),
                    kind: FieldKind::Text,
                }
            )
            .await
            .is_err()
        );
    })
    .await;
    let page = s
        .audit_log(
            inst.id,
            &AuditQuery {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = page.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "account.connected",
            "user.password_changed",
            "user.role_granted",
            "user.role_granted",
            "institution.created"
        ],
        "granting the same role twice is one change"
    );
    assert_eq!(
        page.entries[2].detail["role"],
        json!({"from": "viewer", "to": "admin"})
    );
    assert!(
        page.entries[..4]
            .iter()
            .all(|e| e.actor == "root@state.edu" && e.client == "192.0.2.9")
    );
    assert_eq!(
        page.entries[4].actor_kind,
        ActorKind::System,
        "outside any actor: system"
    );
    let text =
        serde_json::to_string(&page.entries.iter().map(|e| &e.detail).collect::<Vec<_>>()).unwrap();
    assert!(
        !text.contains("at-secret") && !text.contains("password 1"),
        "{text}"
    );
}

#[tokio::test]
async fn opt_in_status_and_address_fields_round_trip_through_writes_and_csv() {
    use ferry_core::contact::SmsOptIn;
    let (s, inst) = setup().await;
    let csv = "first_name,last_name,phone,sms_opt_in,street_address,street_address_2,city,state,zip_code,country\n\
               Ana,Diaz,6175550101,Opted In,12 Main St,,Boston,MA,02139,US\n\
               Ben,Ray,6175550102,,1 Elm St,Apt 2,Salem,MA,01970,US\n\
               Cy,Ng,6175550103,perhaps,,,,,,\n";
    let report = s
        .import_contacts_csv(inst.id, csv.as_bytes().to_vec(), |_| {})
        .await
        .unwrap();
    assert_eq!((report.created, report.skipped), (2, 1), "{report:?}");
    assert_eq!(report.errors[0].code, "invalid_opt_in_status");
    let page = s
        .list_contacts(
            inst.id,
            &ContactQuery {
                limit: 100,
                ..ContactQuery::default()
            },
        )
        .await
        .unwrap();
    let ana = page
        .contacts
        .iter()
        .find(|c| c.data.first_name.as_deref() == Some("Ana"))
        .unwrap()
        .clone();
    let ben = page
        .contacts
        .iter()
        .find(|c| c.data.first_name.as_deref() == Some("Ben"))
        .unwrap()
        .clone();
    assert_eq!(ana.data.sms_opt_in, SmsOptIn::OptedIn);
    assert!(ana.data.opt_in);
    let stamped = ana
        .data
        .sms_opt_in_changed_at
        .expect("a new opted-in contact has a change time");
    assert_eq!(ana.data.street_address.as_deref(), Some("12 Main St"));
    assert_eq!(ana.data.street_address_2, None);
    assert_eq!(ana.data.zip_code.as_deref(), Some("02139"));
    assert_eq!(ana.data.country.as_deref(), Some("US"));
    assert_eq!(ben.data.sms_opt_in, SmsOptIn::Unknown);
    assert_eq!(ben.data.sms_opt_in_changed_at, None);
    assert_eq!(ben.data.street_address_2.as_deref(), Some("Apt 2"));

    // An opt-out through a write: the status, opt_in and the change time move; the address stays.
    let w = write(
        &s,
        inst.id,
        &[
            ("phone", "6175550101"),
            ("sms_opt_in", "opted_out"),
            ("city", ""),
        ],
    )
    .await;
    s.apply_contact_writes(inst.id, &[w], WriteKind::Import)
        .await
        .unwrap();
    let after = s.contact(inst.id, ana.id).await.unwrap();
    assert_eq!(after.data.sms_opt_in, SmsOptIn::OptedOut);
    assert!(!after.data.opt_in);
    assert!(after.data.sms_opt_in_changed_at.unwrap() >= stamped);
    assert_eq!(
        after.data.city.as_deref(),
        Some("Boston"),
        "a blank is skipped"
    );
    assert!(after.change_seq > ana.change_seq);
    // The same status again changes nothing.
    let w = write(
        &s,
        inst.id,
        &[("phone", "6175550101"), ("sms_opt_in", "opted_out")],
    )
    .await;
    let out = s
        .apply_contact_writes(inst.id, &[w], WriteKind::Import)
        .await
        .unwrap();
    assert_eq!(out[0].as_ref().unwrap().action, AppliedAction::Unchanged);
    assert_eq!(s.contact(inst.id, ana.id).await.unwrap(), after);
}

#[tokio::test]
async fn opt_in_paths_queue_one_welcome_per_contact_and_a_sent_one_joins_the_history() {
    let (s, inst) = setup().await;
    let other = s
        .create_institution("other-u", "Other", None)
        .await
        .unwrap();
    let input = |name: &str, welcome: &str| OptInPathInput {
        name: name.into(),
        welcome_message: welcome.into(),
    };
    let path = s
        .create_opt_in_path(inst.id, &input("  Fall fair ", "Welcome to State U texts!"))
        .await
        .unwrap();
    assert_eq!(path.name, "Fall fair", "names are trimmed");
    match s
        .create_opt_in_path(inst.id, &input("Fall fair", "x"))
        .await
    {
        Err(StoreError::Invalid { field, code, .. }) => {
            assert_eq!((field.as_str(), code), ("name", "conflict"))
        }
        other => panic!("a second path with the same name: {other:?}"),
    }
    match s.create_opt_in_path(inst.id, &input("Web", " ")).await {
        Err(StoreError::Invalid { field, .. }) => assert_eq!(field, "welcome_message"),
        other => panic!("an empty welcome: {other:?}"),
    }
    // The same name in another institution is fine, and paths do not cross institutions.
    s.create_opt_in_path(other.id, &input("Fall fair", "Hi"))
        .await
        .unwrap();
    assert!(matches!(
        s.opt_in_path(other.id, path.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.opt_in_paths(inst.id).await.unwrap(), vec![path.clone()]);

    let ana = create(&s, inst.id, "Ana", "+16175550101", None).await;
    let queued = s
        .queue_welcome(inst.id, ana, path.id, None)
        .await
        .unwrap()
        .expect("queued");
    assert_eq!(queued.body, "Welcome to State U texts!");
    assert_eq!(queued.sent_at, None);
    // A retried run queues nothing twice.
    assert_eq!(
        s.queue_welcome(inst.id, ana, path.id, None).await.unwrap(),
        None
    );
    // Another institution's contact or path is refused.
    assert!(s.queue_welcome(other.id, ana, path.id, None).await.is_err());

    // Editing the path does not change what is queued.
    let edited = s
        .update_opt_in_path(inst.id, path.id, &input("Fall fair", "Hello again"))
        .await
        .unwrap();
    assert_eq!(edited.welcome_message, "Hello again");
    let waiting = s.outbox(inst.id, false, None, 100).await.unwrap();
    assert_eq!(waiting, vec![queued.clone()]);
    assert!(
        s.outbox(other.id, false, None, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // Sent: in the contact's history as an outgoing campaign SMS, once.
    let at = jiff::Timestamp::from_second(1_800_000_000).unwrap();
    let sent = s
        .mark_outbox_sent(inst.id, queued.id, Some(at))
        .await
        .unwrap();
    assert_eq!(sent.sent_at, Some(at));
    let again = s.mark_outbox_sent(inst.id, queued.id, None).await.unwrap();
    assert_eq!(again, sent, "marking twice changes nothing");
    let history = s
        .list_messages(
            inst.id,
            &MessageQuery {
                contact_id: Some(ana),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(Some(history[0].id), sent.message_id);
    assert_eq!(history[0].body, "Welcome to State U texts!");
    assert_eq!(
        (
            history[0].channel,
            history[0].message_type,
            history[0].direction
        ),
        (Channel::Sms, MessageType::Campaign, Direction::Outgoing)
    );
    assert_eq!(history[0].sent_at, at);
    assert!(
        s.outbox(inst.id, false, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.outbox(inst.id, true, None, 100).await.unwrap(),
        vec![sent]
    );
    assert!(matches!(
        s.mark_outbox_sent(other.id, queued.id, None).await,
        Err(StoreError::NotFound)
    ));

    // Deleting the path keeps what was queued and sent; the changes are in the audit log.
    s.delete_opt_in_path(inst.id, path.id).await.unwrap();
    assert_eq!(s.outbox(inst.id, true, None, 100).await.unwrap().len(), 1);
    let log = s
        .audit_log(
            inst.id,
            &AuditQuery {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = log.entries.iter().map(|e| e.kind.as_str()).collect();
    for k in [
        "opt_in_path.created",
        "opt_in_path.updated",
        "opt_in_path.deleted",
    ] {
        assert!(kinds.contains(&k), "{k} not audited: {kinds:?}");
    }
}

async fn sync_integration(s: &Store, inst: i64, name: &str) -> i64 {
    s.create_integration(
        inst,
        NewIntegration {
            kind: "hubspot".into(),
            name: name.into(),
            description: String::new(),
            enabled: true,
            config: json!({}),
            secrets: None,
        },
    )
    .await
    .unwrap()
    .id
}

fn sync_result(
    contact_id: i64,
    secs: i64,
    result: ferry_core::run::SyncOutcome,
    code: Option<&str>,
    remote: Option<&str>,
) -> ferry_core::run::SyncResult {
    ferry_core::run::SyncResult {
        contact_id,
        direction: SyncDirection::Outgoing,
        result,
        code: code.map(str::to_string),
        remote_id: remote.map(str::to_string),
        at: jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap(),
    }
}

/// Deletes behind the store's back (the store has no contact or institution deletion), with
/// SQLite's foreign keys on as the store's own connections have them.
async fn delete_raw(s: &TestStore, sql: &str, id: i64) {
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(&s.url).await.unwrap();
    if s.backend() == Backend::Sqlite {
        sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let done = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(id)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1, "{sql} deleted one row");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn contact_sync_upserts_later_wins_and_keeps_the_remote_id() {
    use ferry_core::run::SyncOutcome::*;
    let (s, inst) = setup().await;
    let a = create(&s, inst.id, "Ada", "+16175550101", None).await;
    let b = create(&s, inst.id, "Bo", "+16175550102", None).await;
    let hub = sync_integration(&s, inst.id, "HubSpot nightly").await;
    let ea = sync_integration(&s, inst.id, "A EveryAction").await;
    assert!(s.contact_syncs(inst.id, a).await.unwrap().is_empty());

    s.record_contact_syncs(
        inst.id,
        hub,
        &[
            sync_result(a, 10, Synced, None, Some("crm-a")),
            sync_result(b, 10, Skipped, Some("filtered_out"), None),
            // The same contact twice in one batch: the later one wins, and keeps the ID.
            sync_result(a, 20, Failed, Some("crm_rejected"), None),
        ],
    )
    .await
    .unwrap();
    let rows = s.contact_syncs(inst.id, a).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].integration_id, hub);
    assert_eq!(rows[0].integration_name, "HubSpot nightly");
    assert_eq!(rows[0].integration_kind, "hubspot");
    assert_eq!(rows[0].direction, SyncDirection::Outgoing);
    assert_eq!(rows[0].result, Failed);
    assert_eq!(rows[0].code.as_deref(), Some("crm_rejected"));
    assert_eq!(rows[0].remote_id.as_deref(), Some("crm-a"));
    assert_eq!(rows[0].last_synced_at.as_second(), 1_800_000_020);

    // A later batch: success clears the code and takes the new ID; an older result arriving
    // late changes nothing; a failure keeps the ID known before.
    s.record_contact_syncs(
        inst.id,
        hub,
        &[sync_result(a, 30, Synced, None, Some("crm-a2"))],
    )
    .await
    .unwrap();
    s.record_contact_syncs(
        inst.id,
        hub,
        &[sync_result(a, 25, Failed, Some("late"), Some("x"))],
    )
    .await
    .unwrap();
    let rows = s.contact_syncs(inst.id, a).await.unwrap();
    assert_eq!(
        (
            rows[0].result,
            rows[0].code.as_deref(),
            rows[0].remote_id.as_deref()
        ),
        (Synced, None, Some("crm-a2"))
    );
    s.record_contact_syncs(
        inst.id,
        hub,
        &[sync_result(a, 40, Failed, Some("rate_limited"), None)],
    )
    .await
    .unwrap();
    let rows = s.contact_syncs(inst.id, a).await.unwrap();
    assert_eq!(
        (
            rows[0].result,
            rows[0].code.as_deref(),
            rows[0].remote_id.as_deref()
        ),
        (Failed, Some("rate_limited"), Some("crm-a2"))
    );

    // Another integration and the other direction are rows of their own, listed by name.
    let mut incoming = sync_result(a, 50, Synced, None, Some("ea-1"));
    incoming.direction = SyncDirection::Incoming;
    s.record_contact_syncs(inst.id, ea, &[incoming])
        .await
        .unwrap();
    let rows = s.contact_syncs(inst.id, a).await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.integration_id, r.direction))
            .collect::<Vec<_>>(),
        vec![
            (ea, SyncDirection::Incoming),
            (hub, SyncDirection::Outgoing)
        ]
    );
    let b_rows = s.contact_syncs(inst.id, b).await.unwrap();
    assert_eq!(
        (
            b_rows[0].result,
            b_rows[0].code.as_deref(),
            b_rows[0].remote_id.as_deref()
        ),
        (Skipped, Some("filtered_out"), None)
    );
}

#[tokio::test]
async fn contact_sync_batches_over_a_thousand_rows() {
    use ferry_core::run::SyncOutcome::*;
    let (s, inst) = setup().await;
    let sch = schema(&s, inst.id).await;
    let writes: Vec<ContactWrite> = (0..1_250)
        .map(|i| {
            let phone = format!("+1617555{i:04}");
            ContactWrite::parse(
                &sch,
                [
                    ("first_name", Raw::Str("Many")),
                    ("last_name", Raw::Str("Rows")),
                    ("phone", Raw::Str(&phone)),
                ],
            )
            .unwrap()
        })
        .collect();
    let ids: Vec<i64> = s
        .apply_contact_writes(inst.id, &writes, WriteKind::Create)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().contact_id)
        .collect();
    let hub = sync_integration(&s, inst.id, "HubSpot").await;
    let results: Vec<_> = ids
        .iter()
        .map(|&id| sync_result(id, 1, Synced, None, Some(&format!("crm-{id}"))))
        .collect();
    s.record_contact_syncs(inst.id, hub, &results)
        .await
        .unwrap();
    for &id in [ids[0], ids[999], ids[1_000], ids[1_249]].iter() {
        let rows = s.contact_syncs(inst.id, id).await.unwrap();
        assert_eq!(rows.len(), 1, "contact {id}");
        assert_eq!(rows[0].remote_id, Some(format!("crm-{id}")));
    }
}

#[tokio::test]
async fn contact_sync_does_not_leak_and_goes_with_its_owners() {
    use ferry_core::run::SyncOutcome::*;
    let (s, inst) = setup().await;
    let other = s
        .create_institution("other-u", "Other", None)
        .await
        .unwrap();
    let a = create(&s, inst.id, "Ada", "+16175550101", None).await;
    let b = create(&s, inst.id, "Bo", "+16175550102", None).await;
    let theirs = create(&s, other.id, "Theirs", "+16175550103", None).await;
    let hub = sync_integration(&s, inst.id, "HubSpot").await;
    let hub2 = sync_integration(&s, inst.id, "HubSpot 2").await;
    let their_hub = sync_integration(&s, other.id, "Their HubSpot").await;

    // Another institution's integration is not found; another institution's contact is ignored.
    assert!(matches!(
        s.record_contact_syncs(inst.id, their_hub, &[sync_result(a, 1, Synced, None, None)])
            .await,
        Err(StoreError::NotFound)
    ));
    s.record_contact_syncs(
        inst.id,
        hub,
        &[
            sync_result(a, 1, Synced, None, Some("crm-a")),
            sync_result(b, 1, Synced, None, Some("crm-b")),
            sync_result(theirs, 1, Synced, None, Some("stolen")),
        ],
    )
    .await
    .unwrap();
    s.record_contact_syncs(
        other.id,
        their_hub,
        &[sync_result(theirs, 1, Synced, None, Some("t"))],
    )
    .await
    .unwrap();
    assert!(s.contact_syncs(inst.id, theirs).await.unwrap().is_empty());
    assert!(s.contact_syncs(other.id, a).await.unwrap().is_empty());
    let their_rows = s.contact_syncs(other.id, theirs).await.unwrap();
    assert_eq!(their_rows.len(), 1);
    assert_eq!(their_rows[0].remote_id.as_deref(), Some("t"));

    // Deleting an integration takes its rows; the other integration's stay.
    s.record_contact_syncs(inst.id, hub2, &[sync_result(a, 2, Failed, Some("x"), None)])
        .await
        .unwrap();
    assert_eq!(s.contact_syncs(inst.id, a).await.unwrap().len(), 2);
    s.delete_integration(inst.id, hub2).await.unwrap();
    let rows = s.contact_syncs(inst.id, a).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].integration_id, hub);

    // Deleting a contact takes its rows; a re-used ID would start empty. Count behind the
    // store's back, since the store cannot read a deleted contact's rows.
    delete_raw(&s, "DELETE FROM contacts WHERE id = $1", a).await;
    let pool = sqlx::AnyPool::connect(&s.url).await.unwrap();
    let count = |sql: &'static str, id: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<sqlx::Any, i64>(sql)
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM contact_sync WHERE contact_id = $1", a).await,
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM contact_sync WHERE contact_id = $1", b).await,
        1
    );

    // Deleting an institution takes its rows, and only its.
    delete_raw(&s, "DELETE FROM institutions WHERE id = $1", other.id).await;
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM contact_sync WHERE institution_id = $1",
            other.id
        )
        .await,
        0
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM contact_sync WHERE institution_id = $1",
            inst.id
        )
        .await,
        1
    );
    pool.close().await;
}

#[tokio::test]
async fn crm_id_write_backs_decide_each_pair_as_if_written_one_at_a_time() {
    let (s, inst) = setup().await;
    let other = s
        .create_institution("other-u", "Other", None)
        .await
        .unwrap()
        .id;
    let ana = create(&s, inst.id, "Ana", "6175550101", None).await;
    let ben = create(&s, inst.id, "Ben", "6175550102", Some("CRM-B")).await;
    let cy = create(&s, inst.id, "Cy", "6175550103", None).await;
    let di = create(&s, inst.id, "Di", "6175550104", None).await;
    let elsewhere = create(&s, other, "Ed", "6175550105", None).await;
    let seq = s.current_change_seq(inst.id).await.unwrap();
    let written = s
        .set_crm_ids(
            inst.id,
            &[
                (ana, "CRM-A".into()),
                // Ben's own ID again, then another one for him.
                (ben, "CRM-B".into()),
                (ben, "CRM-B2".into()),
                // Ben's ID for Cy.
                (cy, "CRM-B".into()),
                // Ana's, written by the first pair of this same call.
                (di, "CRM-A".into()),
                (di, "CRM-D".into()),
                (di, "CRM-D".into()),
                // A contact of another institution, and one that does not exist.
                (elsewhere, "CRM-E".into()),
                (999_999, "CRM-X".into()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        written,
        [true, true, false, false, false, true, true, false, false]
    );
    let crm = |id| {
        let s = &s;
        async move { s.contact(inst.id, id).await.unwrap().data.crm_id }
    };
    assert_eq!(crm(ana).await.as_deref(), Some("CRM-A"));
    assert_eq!(crm(ben).await.as_deref(), Some("CRM-B"));
    assert_eq!(crm(cy).await, None);
    assert_eq!(crm(di).await.as_deref(), Some("CRM-D"));
    assert_eq!(s.contact(other, elsewhere).await.unwrap().data.crm_id, None);
    // Bookkeeping, not a change: no change sequence was taken.
    assert_eq!(s.current_change_seq(inst.id).await.unwrap(), seq);

    // More pairs than one transaction takes: every one is written.
    let mut writes = Vec::new();
    for i in 0..1_200 {
        let phone = format!("617556{i:04}");
        writes.push(
            write(
                &s,
                inst.id,
                &[
                    ("first_name", "Many"),
                    ("last_name", "Tester"),
                    ("phone", &phone),
                ],
            )
            .await,
        );
    }
    let many: Vec<(i64, String)> = s
        .apply_contact_writes(inst.id, &writes, WriteKind::Create)
        .await
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, o)| (o.unwrap().contact_id, format!("CRM-M{i}")))
        .collect();
    let written = s.set_crm_ids(inst.id, &many).await.unwrap();
    assert!(written.iter().all(|w| *w), "{written:?}");
    for (id, want) in [&many[0], &many[599], &many[1_199]] {
        assert_eq!(crm(*id).await.as_deref(), Some(want.as_str()));
    }
}
