//! `ferry demo`'s Bulk File Upload: an SFTP account with a generated key (the private half
//! written to the demo's data dir), a contacts and a calls template, the inbound-files instance,
//! sample files, and the `sftp` command that uploads them.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use ferry_core::bulk::{CallMatch, Encoding, TemplateColumn, TemplateKind};
use ferry_store::{NewBulkTemplate, NewIntegration, Store};
use secrecy::ExposeSecret;

use crate::settings::Settings;

/// The demo's SFTP account.
pub const DEMO_SFTP_USER: &str = "demo-uploads";

fn col(name: &str, field: &str, required: bool) -> TemplateColumn {
    TemplateColumn {
        name: name.into(),
        field: Some(field.into()),
        required,
    }
}

const CONTACTS_SAMPLE: &str = "Student ID,First,Last,Mobile,Email\n\
BULK-1001,Rosa,Parks,(617) 555-2101,rosa.parks@demo.ferry.test\n\
BULK-1002,Omar,Haddad,617-555-2102,omar.haddad@demo.ferry.test\n\
BULK-1003,Mei,Chen,6175552103,\n\
BULK-1004,Luis,Ortega,not a phone,luis.ortega@demo.ferry.test\n";

const CALLS_SAMPLE: &str = "Student ID,Direction,Start,Duration,Agent,Notes,Recording\n\
BULK-1001,inbound,2026-09-01 14:30,2:05,Jo Admissions,Asked about financial aid,\n\
BULK-1002,outbound,2026-09-01 15:10,0:45,Al Advising,Left a voicemail,\n";

/// Sets up what is missing; returns the command that uploads the samples.
pub async fn prepare(settings: &Settings, store: &Store, inst: i64, port: u16) -> Result<String> {
    let dir = settings.data_dir.join("bulk-demo");
    crate::settings::create_private_dir(&dir)?;
    let key_path = dir.join("id_ed25519");
    let account = match store.sftp_account_by_username(DEMO_SFTP_USER).await? {
        Some(a) => a,
        None => store.create_sftp_account(inst, DEMO_SFTP_USER).await?,
    };
    if !key_path.exists() || account.keys.is_empty() {
        let generated = ferry_sftpd::generate_key(ferry_sftpd::KeyType::Ed25519, "ferry demo")
            .map_err(|e| anyhow!(e))?;
        store
            .add_sftp_key(inst, account.id, &generated.public)
            .await?;
        write_private(&key_path, generated.private_key.expose_secret())?;
    }
    if store.bulk_templates(inst).await?.is_empty() {
        let base = |name: &str, kind, folder: &str, mask: &str, columns| NewBulkTemplate {
            name: name.into(),
            kind,
            folder: folder.into(),
            file_mask: mask.into(),
            encoding: Encoding::Utf8,
            delimiter: ',',
            header_row: 1,
            columns,
            match_by: CallMatch::CrmId,
            contact: serde_json::json!({"name": "Demo admin"}),
        };
        store
            .create_bulk_template(
                inst,
                &base(
                    "Student contacts",
                    TemplateKind::Contacts,
                    "/contacts",
                    "contacts_*.csv",
                    vec![
                        col("Student ID", "crm_id", true),
                        col("First", "first_name", true),
                        col("Last", "last_name", true),
                        col("Mobile", "phone", true),
                        col("Email", "email", false),
                    ],
                ),
            )
            .await?;
        store
            .create_bulk_template(
                inst,
                &base(
                    "Call center calls",
                    TemplateKind::Calls,
                    "/calls",
                    "calls_*.csv",
                    vec![
                        col("Student ID", "crm_id", true),
                        col("Direction", "direction", true),
                        col("Start", "time", true),
                        col("Duration", "duration", false),
                        col("Agent", "agent", false),
                        col("Notes", "note", false),
                        col("Recording", "recording", false),
                    ],
                ),
            )
            .await?;
    }
    let has_instance = store
        .list_integrations(inst)
        .await?
        .iter()
        .any(|i| i.kind == "bulk_upload");
    if !has_instance {
        store
            .create_integration(
                inst,
                NewIntegration {
                    kind: "bulk_upload".into(),
                    name: "Bulk File Upload".into(),
                    description: "Contacts and calls uploaded to Ferry's SFTP server".into(),
                    enabled: true,
                    config: serde_json::json!({"retention_days": 30, "recording_wait_minutes": 60, "retention_block": 1}),
                    secrets: None,
                },
            )
            .await
            .context("creating the demo Bulk File Upload instance")?;
    }
    std::fs::write(dir.join("contacts_sample.csv"), CONTACTS_SAMPLE)?;
    std::fs::write(dir.join("calls_sample.csv"), CALLS_SAMPLE)?;
    // A new name each time, so that every upload shows in Recent Runs (the same content is
    // reported as a duplicate, not ingested again).
    let stamp = jiff::Timestamp::now().as_second();
    std::fs::write(
        dir.join("upload.batch"),
        format!(
            "-mkdir contacts\n-mkdir calls\nput contacts_sample.csv contacts/contacts_{stamp}.csv\nput calls_sample.csv calls/calls_{stamp}.csv\n"
        ),
    )?;
    Ok(format!(
        "cd {} && sftp -i id_ed25519 -P {port} -o StrictHostKeyChecking=accept-new -b upload.batch {DEMO_SFTP_USER}@127.0.0.1",
        dir.display()
    ))
}

fn write_private(path: &Path, key: &str) -> Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    use std::io::Write;
    o.open(path)
        .and_then(|mut f| f.write_all(key.as_bytes()))
        .with_context(|| format!("cannot write the demo key to {}", path.display()))
}
