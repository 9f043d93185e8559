//! `bench bulk-ingest`: a contacts file of N rows uploaded with OpenSSH `sftp` into Ferry's own
//! SFTP server and ingested by the Bulk File Upload connector, timed from the client's close
//! (the `sftp` command returning) to the finished report (the run ended), against the contacts
//! import of the same file (`ferry import contacts`) into a fresh store, in the same run.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_core::bulk::{CallMatch, Encoding, TemplateColumn, TemplateKind};
use ferry_store::{MasterKey, NewBulkTemplate, NewIntegration, RunQuery, SecretBox, Store};

use super::thousands;

const GOAL: f64 = 1.2;
const USER: &str = "bench-bulk";

async fn fresh(dir: &std::path::Path) -> Result<Store> {
    std::fs::create_dir_all(dir)?;
    let store = Store::connect(
        &ferry_store::default_sqlite_url(dir),
        SecretBox::new(MasterKey::generate()),
    )
    .await?;
    store.migrate().await?;
    Ok(store)
}

/// The rows; `header` names the columns (the customer's names for the upload, Ferry's field
/// names for `ferry import contacts`, which takes no template).
fn write_file(path: &std::path::Path, rows: u64, header: &str) -> Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "{header}")?;
    for i in 0..rows {
        // Distinct valid US numbers: 800,000 per area code (exchanges 230-309, no N11).
        const AREAS: [u64; 12] = [201, 202, 203, 205, 206, 207, 208, 209, 210, 212, 213, 214];
        let area = AREAS[((i / 800_000) as usize) % AREAS.len()];
        let exch = 230 + (i / 10_000) % 80;
        let line = i % 10_000;
        writeln!(
            w,
            "S{i:08},First{i},Last{},({area}) {exch}-{line:04},student{i}@bench.ferry.test",
            i % 9973
        )?;
    }
    w.flush()?;
    Ok(())
}

pub async fn bulk_ingest(rows: u64) -> Result<()> {
    use ferry_sftp::testing::keys;
    if rows == 0 {
        bail!("--rows must be at least 1");
    }
    let dir = tempfile::Builder::new()
        .prefix("ferry-bench-bulk-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let src = dir.path().join("contacts_bench.csv");
    eprintln!("Writing a contacts file of {} rows...", thousands(rows));
    let plain = dir.path().join("contacts_import.csv");
    {
        let (src, plain) = (src.clone(), plain.clone());
        tokio::task::spawn_blocking(move || {
            write_file(&src, rows, "Student ID,First,Last,Mobile,Email")?;
            write_file(&plain, rows, "crm_id,first_name,last_name,phone,email")
        })
        .await??;
    }
    let bytes = std::fs::metadata(&src)?.len();

    // Baseline: `ferry import contacts` of the same file (the store's CSV import).
    eprintln!("Baseline: the contacts import of the file into a fresh store...");
    let base_store = fresh(&dir.path().join("baseline")).await?;
    let inst = base_store
        .create_institution("bench", "Bench", None)
        .await?;
    let data = std::fs::read(&plain)?;
    let t = Instant::now();
    let report = base_store
        .import_contacts_csv(inst.id, data, |_| {})
        .await
        .map_err(|e| anyhow::anyhow!("the import failed: {e}"))?;
    let baseline = t.elapsed();
    if report.created != rows {
        bail!("the import created {} contacts of {rows}", report.created);
    }
    base_store.close().await;

    eprintln!("Ferry's SFTP server and the Bulk File Upload connector on a fresh store...");
    let store = fresh(&dir.path().join("bulk")).await?;
    let inst = store.create_institution("bench", "Bench", None).await?;
    let account = store.create_sftp_account(inst.id, USER).await?;
    let public =
        ferry_sftpd::parse_public_key(&keys().ed25519.public).map_err(anyhow::Error::msg)?;
    store.add_sftp_key(inst.id, account.id, &public).await?;
    let key = dir.path().join("id_ed25519");
    keys().ed25519.write_private(&key);
    let vault =
        ferry_vault::Vault::local(&dir.path().join("vault"), ferry_vault::VaultKey::generate())?;
    let server = ferry_sftpd::SftpServer::start(
        store.clone(),
        vault.clone(),
        "127.0.0.1:0",
        ferry_sftpd::ServerConfig {
            host_keys: vec![ferry_sftpd::HostKeyKind::Ed25519],
            ..Default::default()
        },
    )
    .await?;
    let col = |name: &str, field: &str| TemplateColumn {
        name: name.into(),
        field: Some(field.into()),
        required: true,
    };
    store
        .create_bulk_template(
            inst.id,
            &NewBulkTemplate {
                name: "bench".into(),
                kind: TemplateKind::Contacts,
                folder: "/".into(),
                file_mask: "contacts_*.csv".into(),
                encoding: Encoding::Utf8,
                delimiter: ',',
                header_row: 1,
                columns: vec![
                    col("Student ID", "crm_id"),
                    col("First", "first_name"),
                    col("Last", "last_name"),
                    col("Mobile", "phone"),
                    col("Email", "email"),
                ],
                match_by: CallMatch::CrmId,
                contact: serde_json::json!({}),
            },
        )
        .await?;
    store
        .create_integration(
            inst.id,
            NewIntegration {
                kind: "bulk_upload".into(),
                name: "bench".into(),
                description: String::new(),
                enabled: true,
                config: serde_json::json!({}),
                secrets: None,
            },
        )
        .await?;
    let worker = ferry_worker::Worker::new(
        store.clone(),
        ferry_connectors::Registry::builtin("http://bench.invalid").with_upload_vault(vault),
        ferry_worker::WorkerConfig::default(),
    );

    let batch = dir.path().join("batch");
    std::fs::write(
        &batch,
        format!("put \"{}\" /contacts_bench.csv\n", src.display()),
    )?;
    let t_upload = Instant::now();
    let out = Command::new("sftp")
        .args(["-q", "-F", "/dev/null", "-b"])
        .arg(&batch)
        .arg("-i")
        .arg(&key)
        .args(["-P", &server.local_addr().port().to_string()])
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("{USER}@127.0.0.1"))
        .stdin(Stdio::null())
        .output()
        .context("cannot run OpenSSH's sftp")?;
    let upload = t_upload.elapsed();
    if !out.status.success() {
        bail!(
            "sftp failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // From the client's close: the worker queues the file's run and executes it.
    let t = Instant::now();
    worker.queue_arrived_files().await?;
    while worker.run_once().await?.is_some() {}
    let ingest = t.elapsed();
    let run = store
        .list_runs(
            inst.id,
            &RunQuery {
                limit: 1,
                ..Default::default()
            },
        )
        .await?
        .into_iter()
        .next()
        .context("no run was recorded")?;
    if run.detail["created"].as_u64() != Some(rows) {
        bail!(
            "the bulk run did not create every contact: {:?} {}",
            run.error,
            run.detail
        );
    }
    server.shutdown().await;
    let secs = |d: Duration| d.as_secs_f64();
    let ratio = secs(ingest) / secs(baseline);
    println!(
        "bulk-ingest: {} rows ({:.1} MB)",
        thousands(rows),
        bytes as f64 / 1e6
    );
    println!(
        "  upload over SFTP (not counted):                {:>8.2} s",
        secs(upload)
    );
    println!(
        "  Bulk file run, client's close to report:       {:>8.2} s ({:.0} rows/s)",
        secs(ingest),
        rows as f64 / secs(ingest)
    );
    println!(
        "  ferry import contacts of the same file:        {:>8.2} s ({:.0} rows/s)",
        secs(baseline),
        rows as f64 / secs(baseline)
    );
    println!(
        "  ratio bulk/import: {ratio:.2}x (goal <= {GOAL}x) {}",
        if ratio <= GOAL { "OK" } else { "MISSED" }
    );
    Ok(())
}
