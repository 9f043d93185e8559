//! `ferry bench …`: each benchmark prints a ratio against a baseline measured in the same run.
//!
//! - `bench import`: Ferry's CSV contact import against the sqlite3 shell's `.import` of the
//!   same file.
//! - `bench export` (in `bench_export.rs`): an EAB Notes export over SFTP against `sqlite3 -csv`.
//! - `bench sftp-upload`: Ferry's SFTP client against OpenSSH's `sftp`, to the same sshd.
//! - `bench sftp-server` (in `bench_sftpd.rs`): OpenSSH `sftp` uploading into Ferry's own SFTP
//!   server (encrypting at rest) against the same upload into OpenSSH's sshd.
//! - `bench hubspot` (in `bench_hubspot.rs`): the initial outgoing HubSpot sync of N contacts to
//!   the emulator limited to 100 requests per 10 s, against the floor those limits set.
//! - `bench everyaction` (in `bench_everyaction.rs`): the EveryAction nightly pull against
//!   Ferry's CSV import of the same rows, and the opt-in/out push against the floor the
//!   emulator's rate limit sets.
//!
//! Run with `cargo run --release -p ferry -- bench COMMAND`.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_store::{MasterKey, SecretBox, Store};

use crate::cli::{BenchCommand, UploadDest};
use crate::fake;
use crate::prng::Rng;

#[path = "bench_api.rs"]
mod api;
#[path = "bench_bulk.rs"]
mod bulk;
#[path = "bench_everyaction.rs"]
mod everyaction;
#[path = "bench_export.rs"]
mod export;
#[path = "bench_hubspot.rs"]
mod hubspot;
#[path = "bench_salesforce.rs"]
mod salesforce;
#[path = "bench_sftpd.rs"]
mod sftpd;
#[path = "bench_workers.rs"]
mod workers;

/// The ratio Ferry / (sqlite3 loading Ferry's own indexed table) we aim for: that load is the
/// floor for any importer of the table.
const GOAL: f64 = 0.8;

/// Runs one `ferry bench` command.
pub async fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Import { rows, keep } => import(rows, keep).await,
        BenchCommand::Export {
            messages,
            server,
            keep,
        } => export::export(messages, server, keep).await,
        BenchCommand::ExportRun {
            store_dir,
            institution_id,
            integration_id,
            public_url,
        } => export::export_run(&store_dir, institution_id, integration_id, &public_url).await,
        BenchCommand::SftpUpload {
            size_mb,
            runs,
            no_fsync,
            dest,
        } => sftp_upload(size_mb, runs, !no_fsync, dest).await,
        BenchCommand::Hubspot { contacts } => hubspot::hubspot(contacts).await,
        BenchCommand::Salesforce { contacts, changes } => {
            salesforce::salesforce(contacts, changes).await
        }
        BenchCommand::Workers {
            runs,
            latency_ms,
            database_url,
        } => workers::workers(runs, latency_ms, &database_url).await,
        BenchCommand::ApiUnderImport {
            rows,
            clients,
            seconds,
        } => api::api_under_import(rows, clients, seconds).await,
        BenchCommand::WorkersChild {
            database_url,
            remote,
        } => workers::workers_child(&database_url, &remote).await,
        BenchCommand::SftpServer { size_mb, runs } => sftpd::sftp_server(size_mb, runs).await,
        BenchCommand::BulkIngest { rows } => bulk::bulk_ingest(rows).await,
        BenchCommand::Everyaction {
            records,
            changes,
            rate_limit,
        } => everyaction::everyaction(records, changes, rate_limit).await,
    }
}

pub async fn import(rows: u64, keep: bool) -> Result<()> {
    if rows == 0 {
        bail!("--rows must be at least 1");
    }
    let sqlite3_version = sqlite3_version()?;
    let dir = tempfile::Builder::new()
        .prefix("ferry-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let csv = dir.path().join("contacts.csv");

    eprintln!("Generating {} contact rows...", thousands(rows));
    let t = Instant::now();
    let bytes = {
        let csv = csv.clone();
        tokio::task::spawn_blocking(move || write_csv(&csv, rows)).await??
    };
    eprintln!(
        "  {} ({:.1} MB) in {:.1} s",
        csv.display(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    eprintln!("Baseline: sqlite3 {sqlite3_version} .import into a bare table...");
    let raw_db = dir.path().join("raw.db");
    let raw_time = sqlite3_import(&raw_db, &csv)?;
    let raw_count = sqlite3_count(&raw_db)?;
    if raw_count != rows {
        bail!("sqlite3 imported {raw_count} rows, expected {rows}");
    }

    eprintln!(
        "Reference: sqlite3 {sqlite3_version} loading the same rows into Ferry's contacts table (same indexes)..."
    );
    let schema_dir = dir.path().join("schema");
    crate::settings::create_private_dir(&schema_dir)?;
    let schema_time = {
        let store = Store::connect(
            &ferry_store::default_sqlite_url(&schema_dir),
            SecretBox::new(MasterKey::generate()),
        )
        .await?;
        store.migrate().await?;
        let inst = store
            .create_institution("bench", "Bench University", None)
            .await?;
        store.close().await;
        sqlite3_into_ferry_schema(&schema_dir.join("ferry.db"), &csv, inst.id)?
    };

    eprintln!("Ferry: import with validation and matching into a fresh store...");
    let ferry_dir = dir.path().join("ferry");
    crate::settings::create_private_dir(&ferry_dir)?;
    let store = Store::connect(
        &ferry_store::default_sqlite_url(&ferry_dir),
        SecretBox::new(MasterKey::generate()),
    )
    .await?;
    store.migrate().await?;
    let inst = store
        .create_institution("bench", "Bench University", None)
        .await?;
    let bar = crate::commands::progress_bar(rows);
    let t = Instant::now();
    let data = tokio::fs::read(&csv).await?;
    let report = store
        .import_contacts_csv(inst.id, data, {
            let bar = bar.clone();
            move |done| bar.set_position(done)
        })
        .await;
    let ferry_time = t.elapsed();
    bar.finish_and_clear();
    let report = report.map_err(|e| anyhow::anyhow!("Ferry's import failed: {e}"))?;
    if let Some(e) = report.errors.first() {
        bail!(
            "Ferry skipped {} rows; the first, row {}: {} [{}]",
            report.skipped,
            e.row,
            e.message,
            e.code
        );
    }
    let ferry_count = store.count_contacts(inst.id).await?;
    store.close().await;
    if ferry_count != rows as i64 || report.created != rows {
        bail!(
            "Ferry holds {ferry_count} contacts (created {}), expected {rows}",
            report.created
        );
    }

    let raw_rate = rows as f64 / raw_time.as_secs_f64();
    let ferry_rate = rows as f64 / ferry_time.as_secs_f64();
    let ratio = ferry_rate / raw_rate;
    let schema_rate = rows as f64 / schema_time.as_secs_f64();
    println!();
    println!(
        "CSV import of {} contacts ({:.1} MB)",
        thousands(rows),
        bytes as f64 / 1e6
    );
    println!();
    println!("  {:<42} {:>9} {:>12}", "importer", "seconds", "rows/s");
    println!(
        "  {:<42} {:>9.2} {:>12}",
        "sqlite3 .import (raw, no checks)",
        raw_time.as_secs_f64(),
        thousands(raw_rate as u64)
    );
    println!(
        "  {:<42} {:>9.2} {:>12}",
        "sqlite3 into Ferry's table (same indexes)",
        schema_time.as_secs_f64(),
        thousands(schema_rate as u64)
    );
    println!(
        "  {:<42} {:>9.2} {:>12}",
        "ferry import (validation, matching, seq)",
        ferry_time.as_secs_f64(),
        thousands(ferry_rate as u64)
    );
    println!();
    println!("  ferry/raw = {ratio:.2}");
    println!(
        "  sqlite3 into Ferry's table / raw = {:.2}  (what the indexes alone cost, before any checks)",
        schema_rate / raw_rate
    );
    let floor_ratio = ferry_rate / schema_rate;
    println!(
        "  ferry/(sqlite3 into Ferry's table) = {floor_ratio:.2}  (goal >= {GOAL:.2}: {})",
        if floor_ratio >= GOAL {
            "met"
        } else {
            "not met"
        }
    );
    if keep {
        let path = dir.keep();
        println!();
        println!("kept {}", path.display());
    }
    Ok(())
}

fn sqlite3_version() -> Result<String> {
    match Command::new("sqlite3").arg("-version").output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()),
        Ok(out) => bail!(
            "`sqlite3 -version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "the `sqlite3` command-line shell is not installed (or not on PATH); this benchmark \
             uses it as its baseline. Install it (Debian/Ubuntu: `apt-get install sqlite3`, \
             macOS: `brew install sqlite`) and run again"
        ),
        Err(e) => bail!("cannot run sqlite3: {e}"),
    }
}

/// Times `sqlite3 DB` reading `.mode csv` / `.import FILE contacts` from stdin (the table is
/// created from the header row).
fn sqlite3_import(db: &Path, csv: &Path) -> Result<Duration> {
    run_sqlite3(
        db,
        &format!(
            ".bail on\n.mode csv\n.import \"{}\" contacts\n",
            shell_quote(csv)
        ),
        ".import",
    )
}

/// Times the sqlite3 shell loading the CSV into a temporary table and then, in one
/// `INSERT … SELECT`, into Ferry's own `contacts` table with its indexes, foreign key and
/// AUTOINCREMENT: the cost of the table itself, with no validation or matching. The shell gets
/// the settings of Ferry's write connection (WAL, a page cache of up to 256 MiB), so this is
/// the floor for any importer of this table.
fn sqlite3_into_ferry_schema(db: &Path, csv: &Path, institution_id: i64) -> Result<Duration> {
    let script = format!(
        ".bail on\n.mode csv\n.output /dev/null\nPRAGMA journal_mode = WAL;\n.output\n\
         PRAGMA synchronous = NORMAL;\nPRAGMA foreign_keys = ON;\n\
         PRAGMA cache_size = -262144;\nPRAGMA temp_store = MEMORY;\n\
         CREATE TEMP TABLE t (first_name, last_name, phone, email, enrollment_id, crm_id);\n\
         .import --skip 1 \"{}\" t\n\
         INSERT INTO contacts (institution_id, first_name, last_name, phone, email, enrollment_id, crm_id, change_seq, created_at, updated_at) \
         SELECT {institution_id}, first_name, last_name, phone, email, enrollment_id, crm_id, rowid, 0, 0 FROM t;\n",
        shell_quote(csv)
    );
    run_sqlite3(db, &script, "load into Ferry's schema")
}

/// A path inside a double-quoted sqlite3 shell argument.
fn shell_quote(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// Runs a script through `sqlite3 DB` on stdin and times it; any error output fails it.
fn run_sqlite3(db: &Path, script: &str, what: &str) -> Result<Duration> {
    let t = Instant::now();
    let mut child = Command::new("sqlite3")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start sqlite3")?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    let took = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.trim().is_empty() {
        bail!("sqlite3 {what} failed ({}): {}", out.status, stderr.trim());
    }
    Ok(took)
}

fn sqlite3_count(db: &Path) -> Result<u64> {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg("SELECT count(*) FROM contacts")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .with_context(|| format!("unexpected sqlite3 output {text:?}"))
}

/// Exchanges 200-999 without the N11 service codes.
fn exchanges() -> Vec<u16> {
    (200..1000).filter(|e| e % 100 != 11).collect()
}

/// Writes `rows` contacts with unique valid US phones and unique CRM IDs; returns the size.
pub fn write_csv(path: &Path, rows: u64) -> Result<u64> {
    let exch = exchanges();
    let areas = fake::AREA_CODES;
    let capacity = (areas.len() * exch.len() * 10_000) as u64;
    if rows > capacity {
        bail!("at most {capacity} rows can have unique phone numbers");
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    writeln!(w, "first_name,last_name,phone,email,enrollment_id,crm_id")?;
    let mut rng = Rng::new(0xBE7C_4000);
    for i in 0..rows {
        let first = *rng.pick(fake::FIRST_NAMES);
        let last = *rng.pick(fake::LAST_NAMES);
        let area = areas[(i % areas.len() as u64) as usize];
        let j = i / areas.len() as u64;
        let line = (j % 10_000) as u16;
        let exchange = exch[(j / 10_000) as usize % exch.len()];
        let phone = fake::format_phone(area, exchange, line, rng.next_u64());
        writeln!(
            w,
            "{first},{last},{phone},{}.{}.{i}@example.edu,E{i:08},0035e{:013X}",
            fake::email_part(first),
            fake::email_part(last),
            // XOR with a constant is a bijection: unique, but not in row order.
            i ^ 0x5_DEEC_E66D
        )?;
    }
    w.flush()?;
    Ok(w.get_ref().metadata()?.len())
}

/// The throughput ratio Ferry/OpenSSH we aim for (at least).
const UPLOAD_GOAL: f64 = 1.5;

/// `ferry bench sftp-upload`: for each destination, one sshd, one file, uploaded alternately by
/// Ferry's client and by OpenSSH's `sftp`, `runs` times each.
pub async fn sftp_upload(size_mb: u64, runs: u32, fsync: bool, dest: UploadDest) -> Result<()> {
    if size_mb == 0 || runs == 0 {
        bail!("--size-mb and --runs must be at least 1");
    }
    let memory = Path::new("/dev/shm");
    let disk = std::env::temp_dir();
    let roots: Vec<(&str, &Path)> = match dest {
        UploadDest::Disk => vec![("disk", &disk)],
        UploadDest::Memory => vec![("memory", memory)],
        UploadDest::Both => vec![("disk", &disk), ("memory", memory)],
    };
    if dest != UploadDest::Disk && !memory.is_dir() {
        bail!("/dev/shm is not there; use --dest disk");
    }
    let ssh_version = openssh_version()?;
    for (label, root) in roots {
        upload_to(label, root, size_mb, runs, fsync, &ssh_version).await?;
    }
    Ok(())
}

/// One round of `bench sftp-upload` with sshd and the file in a directory inside `root`.
async fn upload_to(
    label: &str,
    root: &Path,
    size_mb: u64,
    runs: u32,
    fsync: bool,
    ssh_version: &str,
) -> Result<()> {
    use ferry_sftp::testing::{Sshd, keys};
    use ferry_sftp::{ClientOptions, HostKeyPolicy};

    let load = load_note();
    eprintln!(
        "Starting OpenSSH sshd on 127.0.0.1, writing to {}...",
        root.display()
    );
    let sshd_root = root.to_path_buf();
    let sshd = match tokio::task::spawn_blocking(move || Sshd::start_in(&sshd_root)).await {
        Ok(Some(sshd)) => sshd,
        Ok(None) => bail!(
            "OpenSSH's sshd is not available, so there is nothing to upload to; install \
             openssh-server (Debian/Ubuntu: `apt-get install openssh-server`) and run again"
        ),
        Err(e) => bail!("OpenSSH's sshd did not start: {e}"),
    };
    let dir = tempfile::Builder::new()
        .prefix("ferry-bench-upload-")
        .tempdir_in(root)
        .with_context(|| format!("cannot create a directory in {}", root.display()))?;
    let size = size_mb * (1 << 20);
    let src = dir.path().join("upload.bin");
    eprintln!("Generating {size_mb} MiB of incompressible data...");
    {
        let src = src.clone();
        tokio::task::spawn_blocking(move || write_random(&src, size)).await??;
    }
    let key = dir.path().join("id_ed25519");
    keys().ed25519.write_private(&key);
    let mut options = ClientOptions::default();
    options.fsync = fsync;
    let policy = HostKeyPolicy::Pinned(sshd.host_fingerprint.clone());
    let target = sshd.target(keys().ed25519.auth());
    let remote_dir = sshd.upload_path();

    let ferry = async |name: &str| -> Result<Duration> {
        let t = Instant::now();
        let session = ferry_sftp::connect_with(&target, &policy, &options).await?;
        let file = tokio::fs::File::open(&src).await?;
        let report = session.upload(Some(&remote_dir), name, file).await?;
        session.close().await?;
        let took = t.elapsed();
        if report.bytes != size {
            bail!("Ferry uploaded {} bytes of {size}", report.bytes);
        }
        Ok(took)
    };
    // `cipher`: None for OpenSSH's own choice (chacha20-poly1305 between OpenSSH peers).
    let openssh = |name: &str, cipher: Option<&str>| -> Result<Duration> {
        let batch = dir.path().join("batch");
        std::fs::write(
            &batch,
            format!(
                "put {}\"{}\" \"{}/{name}\"\n",
                if fsync { "-f " } else { "" },
                src.display(),
                remote_dir
            ),
        )?;
        let mut command = Command::new("sftp");
        command
            .args(["-q", "-F", "/dev/null", "-b"])
            .arg(&batch)
            .arg("-i")
            .arg(&key)
            .args(["-P", &sshd.port.to_string()])
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
            ]);
        if let Some(cipher) = cipher {
            command.args(["-c", cipher]);
        }
        let t = Instant::now();
        let out = command
            .arg(format!("{}@127.0.0.1", sshd.user))
            .stdin(Stdio::null())
            .output()
            .context("cannot run OpenSSH's sftp")?;
        let took = t.elapsed();
        if !out.status.success() {
            bail!(
                "sftp failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(took)
    };
    let landed = |name: &str| -> Result<()> {
        let path = sshd.upload_dir.join(name);
        let got = std::fs::metadata(&path)
            .with_context(|| format!("{} was not uploaded", path.display()))?
            .len();
        if got != size {
            bail!("{} has {got} bytes, expected {size}", path.display());
        }
        // Free the space (and the page cache) before the next upload.
        std::fs::remove_file(&path)?;
        Ok(())
    };

    const CLIENTS: [(&str, Option<&str>); 3] = [
        ("ferry (russh, aes256-gcm, 64 x 32,704 B in flight)", None),
        ("OpenSSH sftp (its defaults: chacha20-poly1305)", None),
        (
            "OpenSSH sftp -c aes256-gcm@openssh.com",
            Some("aes256-gcm@openssh.com"),
        ),
    ];
    let rate = |d: Duration| size as f64 / 1e6 / d.as_secs_f64();
    let mut best = [Duration::MAX; 3];
    let mut lines = Vec::new();
    for i in 0..runs as usize {
        // Rotate who goes first, so that no client always meets the same machine state.
        for k in 0..CLIENTS.len() {
            let c = (i + k) % CLIENTS.len();
            // Nothing from the previous upload left to write back while this one runs.
            let _ = Command::new("sync").status();
            let name = format!("upload-{i}-{c}.bin");
            eprintln!("  run {}: {}...", i + 1, CLIENTS[c].0);
            let took = if c == 0 {
                ferry(&name)
                    .await
                    .map_err(|e| anyhow::anyhow!("Ferry's upload failed: {e:#}"))?
            } else {
                openssh(&name, CLIENTS[c].1)?
            };
            landed(&name)?;
            best[c] = best[c].min(took);
            lines.push((c, i, took));
        }
    }
    drop(sshd);

    let ratio = rate(best[0]) / rate(best[1]);
    let same_cipher = rate(best[0]) / rate(best[2]);
    println!();
    println!(
        "SFTP upload of {} bytes ({size_mb} MiB, incompressible) to OpenSSH sshd on 127.0.0.1 ({ssh_version}), writing to {label} ({}){}",
        thousands(size),
        root.display(),
        if fsync {
            "; every client asks for fsync before it finishes"
        } else {
            "; no fsync"
        }
    );
    println!("  ({load})");
    println!();
    println!(
        "  {:<50} {:>4} {:>9} {:>9}",
        "client", "run", "seconds", "MB/s"
    );
    lines.sort_by_key(|(c, i, _)| (*c, *i));
    for (c, i, took) in &lines {
        println!(
            "  {:<50} {:>4} {:>9.2} {:>9.1}",
            CLIENTS[*c].0,
            i + 1,
            took.as_secs_f64(),
            rate(*took)
        );
    }
    println!();
    println!(
        "  best: ferry {:.1} MB/s, OpenSSH sftp {:.1} MB/s, OpenSSH sftp with aes256-gcm {:.1} MB/s",
        rate(best[0]),
        rate(best[1]),
        rate(best[2])
    );
    println!(
        "  ferry/OpenSSH sftp throughput, writing to {label} = {ratio:.2}  (goal >= {UPLOAD_GOAL:.1}: {})",
        if ratio >= UPLOAD_GOAL {
            "met"
        } else {
            "not met"
        }
    );
    println!(
        "  ferry/(OpenSSH sftp with Ferry's cipher) = {same_cipher:.2}  (the client alone, cipher aside)"
    );
    Ok(())
}

/// `ssh -V`'s version (it prints to stderr), which is also the `sftp` client's.
fn openssh_version() -> Result<String> {
    match Command::new("ssh").arg("-V").output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stderr);
            let version = text
                .split([',', ' '])
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            if Command::new("sftp").arg("-h").output().is_err() {
                bail!("OpenSSH's `sftp` client is not installed (apt-get install openssh-client)");
            }
            Ok(version)
        }
        Err(_) => bail!(
            "OpenSSH's client is not installed; this benchmark uses its `sftp` as the baseline \
             (apt-get install openssh-client)"
        ),
    }
}

/// Writes `size` bytes of pseudo-random (incompressible) data.
fn write_random(path: &Path, size: u64) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut rng = Rng::new(0x5F7B_0A7D);
    let mut block = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        for c in block.chunks_exact_mut(8) {
            c.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        w.write_all(&block[..n])?;
        left -= n as u64;
    }
    w.flush()?;
    Ok(())
}

/// The machine's 1-minute load average, printed with the figures: on a small machine another
/// busy process shows in every timing.
pub fn load_note() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let one = load.split_whitespace().next().unwrap_or("?");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("load average {one} on {cores} cores when it started")
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::phone::Phone;

    #[test]
    fn generated_rows_are_valid_and_unique() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        write_csv(&path, 3_000).unwrap();
        let mut rdr = csv::Reader::from_path(&path).unwrap();
        let mut phones = std::collections::HashSet::new();
        let mut crm = std::collections::HashSet::new();
        let mut n = 0;
        for r in rdr.records() {
            let r = r.unwrap();
            assert_eq!(r.len(), 6);
            let p = Phone::parse(&r[2]).unwrap_or_else(|e| panic!("{e}"));
            assert!(phones.insert(p));
            assert!(crm.insert(r[5].to_string()));
            n += 1;
        }
        assert_eq!(n, 3_000);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
