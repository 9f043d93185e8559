//! `ferry bench export`: an EAB Notes export of N messages to an SFTP server on loopback against
//! the `sqlite3` shell writing the same rows as CSV to a file, measured in the same run. Run with
//! `cargo run --release -p ferry -- bench export`.
//!
//! The export runs in a child process (`ferry bench export-run`, hidden) so that its peak
//! memory is its own and not the data generation's.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_connectors::Registry;
use ferry_core::message::{Channel, Direction, MessageType};
use ferry_core::run::{RunStatus, Trigger};
use ferry_store::{MasterKey, NewIntegration, NewRun, SecretBox, Store};
use ferry_worker::{Worker, WorkerConfig};
use serde_json::{Value, json};

use super::{load_note, run_sqlite3, sqlite3_version, thousands, write_csv};
use crate::cli::BenchServer;
use crate::fake;

/// The time ratio Ferry/sqlite3 we aim for (at most).
const TIME_GOAL: f64 = 1.3;
/// The peak RSS we aim for (at most), in MB.
const RSS_GOAL_MB: f64 = 64.0;
/// Messages per contact.
const MESSAGES_PER_CONTACT: u64 = 20;
const PUBLIC_URL: &str = "https://ferry.example.edu";
const NOTE_BODY: &str = "{channel} {direction} message on {date}: {message} {url}";
const MASTER_KEY_ENV: &str = "FERRY_MASTER_KEY";

/// Where the file goes.
enum Remote {
    Sshd(ferry_sftp::testing::Sshd),
    Ferry {
        server: ferry_sftp::server::TestServer,
        password: String,
    },
}

const FERRY_SERVER_USER: &str = "bench";
const FERRY_SERVER_DIR: &str = "outbox";

impl Remote {
    async fn start(choice: BenchServer, dir: &Path) -> Result<Remote> {
        if choice != BenchServer::Ferry {
            // Sshd::start prints why it is unavailable (or panics under CI=true).
            match tokio::task::spawn_blocking(ferry_sftp::testing::Sshd::start).await {
                Ok(Some(sshd)) => return Ok(Remote::Sshd(sshd)),
                Ok(None) if choice == BenchServer::Openssh => {
                    bail!("OpenSSH's sshd is not available (apt-get install openssh-server)")
                }
                Err(e) if choice == BenchServer::Openssh => {
                    bail!("OpenSSH's sshd did not start: {e}")
                }
                Ok(None) => eprintln!("  sshd is not available; using Ferry's test SFTP server"),
                Err(e) => {
                    eprintln!("  sshd did not start ({e}); using Ferry's test SFTP server")
                }
            }
        }
        let root = dir.join("sftp-root");
        std::fs::create_dir_all(root.join(FERRY_SERVER_DIR))?;
        let password = crate::commands::generate_password();
        let server = ferry_sftp::server::TestServer::builder(&root)
            .password(FERRY_SERVER_USER, &password)
            .start()
            .await
            .context("starting Ferry's test SFTP server")?;
        Ok(Remote::Ferry { server, password })
    }

    fn label(&self) -> String {
        match self {
            Remote::Sshd(s) => format!("OpenSSH sshd (internal-sftp) on 127.0.0.1:{}", s.port),
            Remote::Ferry { server, .. } => {
                format!(
                    "Ferry's test SFTP server (russh, in the benchmark's process) on 127.0.0.1:{}",
                    server.port()
                )
            }
        }
    }

    /// The export's `sftp` config section and its secrets.
    fn config(&self) -> (Value, serde_json::Map<String, Value>) {
        let mut secrets = serde_json::Map::new();
        let sftp = match self {
            Remote::Sshd(s) => {
                secrets.insert(
                    "private_key".into(),
                    ferry_sftp::testing::keys().ed25519.private.clone().into(),
                );
                json!({
                    "host": "127.0.0.1", "port": s.port, "username": s.user,
                    "directory": s.upload_path(), "file_prefix": "eab_notes_",
                    "host_key": s.host_fingerprint,
                })
            }
            Remote::Ferry { server, password } => {
                secrets.insert("password".into(), password.clone().into());
                json!({
                    "host": "127.0.0.1", "port": server.port(), "username": FERRY_SERVER_USER,
                    "directory": FERRY_SERVER_DIR, "file_prefix": "eab_notes_",
                    "host_key": server.host_key_fingerprint(),
                })
            }
        };
        (sftp, secrets)
    }

    /// The local directory the uploaded file lands in.
    fn landing_dir(&self) -> PathBuf {
        match self {
            Remote::Sshd(s) => s.upload_dir.clone(),
            Remote::Ferry { server, .. } => server.root().join(FERRY_SERVER_DIR),
        }
    }

    async fn stop(self) {
        match self {
            Remote::Sshd(s) => drop(s),
            Remote::Ferry { server, .. } => server.shutdown().await,
        }
    }
}

/// What the child process reports (one JSON line on stdout).
#[derive(Debug, Default, PartialEq)]
struct ChildReport {
    seconds: f64,
    status: String,
    rows: i64,
    bytes: u64,
    file: String,
    error: Option<String>,
    /// CPU time of the child during the export (user, system), seconds.
    cpu_user: f64,
    cpu_system: f64,
    /// Whole-machine CPU busy during the export, in CPU-seconds (the sshd's share is in here).
    machine_busy: f64,
    /// VmRSS just before the export started, kB.
    rss_before_kb: u64,
    /// VmHWM at the end, kB.
    hwm_kb: u64,
    /// The highest RssAnon / RssFile sampled every 10 ms during the export, kB.
    max_anon_kb: u64,
    max_file_kb: u64,
}

impl ChildReport {
    fn to_json(&self) -> Value {
        json!({
            "seconds": self.seconds, "status": self.status, "rows": self.rows,
            "bytes": self.bytes, "file": self.file, "error": self.error,
            "cpu_user": self.cpu_user, "cpu_system": self.cpu_system,
            "machine_busy": self.machine_busy, "rss_before_kb": self.rss_before_kb,
            "hwm_kb": self.hwm_kb, "max_anon_kb": self.max_anon_kb, "max_file_kb": self.max_file_kb,
        })
    }

    fn from_json(v: &Value) -> ChildReport {
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        let u = |k: &str| v[k].as_u64().unwrap_or(0);
        let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
        ChildReport {
            seconds: f("seconds"),
            status: s("status"),
            rows: v["rows"].as_i64().unwrap_or(0),
            bytes: u("bytes"),
            file: s("file"),
            error: v["error"].as_str().map(str::to_string),
            cpu_user: f("cpu_user"),
            cpu_system: f("cpu_system"),
            machine_busy: f("machine_busy"),
            rss_before_kb: u("rss_before_kb"),
            hwm_kb: u("hwm_kb"),
            max_anon_kb: u("max_anon_kb"),
            max_file_kb: u("max_file_kb"),
        }
    }
}

pub async fn export(messages: u64, server: BenchServer, keep: bool) -> Result<()> {
    if messages == 0 {
        bail!("--messages must be at least 1");
    }
    let sqlite3_version = sqlite3_version()?;
    let load = load_note();
    let contacts = messages.div_ceil(MESSAGES_PER_CONTACT);
    let dir = tempfile::Builder::new()
        .prefix("ferry-bench-export-")
        .tempdir()
        .context("cannot create a temporary directory")?;

    eprintln!("Starting the SFTP server...");
    let remote = Remote::start(server, dir.path()).await?;
    let server_label = remote.label();
    eprintln!("  {server_label}");

    // The master key goes to the child through the environment, as `ferry serve` would get it.
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let master = || MasterKey::parse(&key_hex).map_err(anyhow::Error::msg);

    let store_dir = dir.path().join("store");
    crate::settings::create_private_dir(&store_dir)?;
    let db = store_dir.join("ferry.db");
    let url = ferry_store::default_sqlite_url(&store_dir);

    eprintln!(
        "Generating {} contacts (Ferry's CSV import) and {} messages (sqlite3)...",
        thousands(contacts),
        thousands(messages)
    );
    let t = Instant::now();
    let store = Store::connect(&url, SecretBox::new(master()?)).await?;
    store.migrate().await?;
    let inst = store
        .create_institution("bench", "Bench University", None)
        .await?;
    let csv = dir.path().join("contacts.csv");
    {
        let csv = csv.clone();
        tokio::task::spawn_blocking(move || write_csv(&csv, contacts)).await??;
    }
    let report = store
        .import_contacts_csv(inst.id, tokio::fs::read(&csv).await?, |_| {})
        .await
        .map_err(|e| anyhow::anyhow!("importing the contacts failed: {e}"))?;
    if report.created != contacts {
        bail!(
            "the contact import created {} of {contacts} contacts",
            report.created
        );
    }
    std::fs::remove_file(&csv)?;
    store.close().await;
    drop(store); // and its rusqlite connection, so that sqlite3 may change the journal mode
    let contacts_time = t.elapsed();

    let t = Instant::now();
    insert_messages(&db, inst.id, contacts, messages)?;
    let messages_time = t.elapsed();
    let db_bytes = std::fs::metadata(&db)?.len();
    eprintln!(
        "  contacts in {:.1} s, messages in {:.1} s; database {:.0} MB",
        contacts_time.as_secs_f64(),
        messages_time.as_secs_f64(),
        db_bytes as f64 / 1e6
    );

    let store = Store::connect(&url, SecretBox::new(master()?)).await?;
    let (sftp, secrets) = remote.config();
    let config = json!({
        "sftp": sftp,
        "schedule": {"blocks": []},
        "filters": filters_json(),
        "eab": {
            "import_version": "2", "institution_id": "1234", "group_id": "group_id",
            "dedupe_contacts": false, "is_private": false, "student_viewable": false,
            "show_on_student_report": true, "created_by": "Mainstay",
            "note_reasons": "Mainstay conversation", "note_body": NOTE_BODY,
        }
    });
    Registry::builtin(PUBLIC_URL)
        .validate("eab_notes_export", &config)
        .map_err(|e| anyhow::anyhow!("the benchmark's export config is invalid: {e:?}"))?;
    let integration = store
        .create_integration(
            inst.id,
            NewIntegration {
                kind: "eab_notes_export".into(),
                name: "EAB Notes (bench)".into(),
                description: String::new(),
                enabled: false,
                config,
                secrets: Some(secrets),
            },
        )
        .await?;
    store.close().await;

    eprintln!("Ferry: EAB Notes export to {server_label} (child process)...");
    let exe = std::env::current_exe().context("cannot find the ferry executable")?;
    let t = Instant::now();
    let out = Command::new(exe)
        .args(["--log", "warn", "bench", "export-run", "--store-dir"])
        .arg(&store_dir)
        .args(["--institution-id", &inst.id.to_string()])
        .args(["--integration-id", &integration.id.to_string()])
        .args(["--public-url", PUBLIC_URL])
        .env(MASTER_KEY_ENV, &key_hex)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot start the export's child process")?;
    let child_wall = t.elapsed();
    if !out.status.success() {
        bail!("the export's child process failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let child = ChildReport::from_json(
        &serde_json::from_str(stdout.lines().last().unwrap_or(""))
            .with_context(|| format!("unexpected output from the child: {stdout:?}"))?,
    );
    if child.status != RunStatus::Success.as_str() {
        bail!(
            "the export ended {}: {}",
            child.status,
            child.error.as_deref().unwrap_or("(no reason)")
        );
    }
    if child.rows != messages as i64 {
        bail!("the export wrote {} rows, expected {messages}", child.rows);
    }
    let landed = remote.landing_dir().join(&child.file);
    let landed_bytes = std::fs::metadata(&landed)
        .with_context(|| format!("the uploaded file {} is missing", landed.display()))?
        .len();
    if landed_bytes != child.bytes {
        bail!(
            "the server holds {landed_bytes} bytes, the export reported {}",
            child.bytes
        );
    }
    // Keep the disk and the page cache for the baseline.
    if !keep {
        std::fs::remove_file(&landed)?;
    }

    eprintln!("Baseline: sqlite3 {sqlite3_version} -csv of the same rows to a file...");
    let csv_out = dir.path().join("sqlite3.csv");
    let sql = baseline_sql(inst.id, messages);
    let t = Instant::now();
    let status = Command::new("sqlite3")
        .arg("-csv")
        .arg(&db)
        .arg(&sql)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&csv_out)?)
        .stderr(Stdio::inherit())
        .status()
        .context("cannot start sqlite3")?;
    let sqlite3_time = t.elapsed();
    if !status.success() {
        bail!("sqlite3 -csv failed ({status})");
    }
    let sqlite3_bytes = std::fs::metadata(&csv_out)?.len();
    let sqlite3_rows = count_lines(&csv_out)?;
    if sqlite3_rows != messages {
        bail!("sqlite3 wrote {sqlite3_rows} rows, expected {messages}");
    }
    remote.stop().await;

    let ferry_s = child.seconds;
    let sqlite3_s = sqlite3_time.as_secs_f64();
    let ratio = ferry_s / sqlite3_s;
    let mb = |kb: u64| kb as f64 * 1024.0 / 1e6;
    let hwm = mb(child.hwm_kb);
    println!();
    println!(
        "EAB Notes export of {} messages ({} contacts; database {:.0} MB)",
        thousands(messages),
        thousands(contacts),
        db_bytes as f64 / 1e6
    );
    println!("  SFTP server: {server_label}; {load}");
    println!();
    println!(
        "  {:<44} {:>9} {:>12} {:>14} {:>9}",
        "", "seconds", "rows/s", "bytes", "MB/s"
    );
    println!(
        "  {:<44} {:>9.2} {:>12} {:>14} {:>9.1}",
        format!("sqlite3 -csv to a file ({sqlite3_version})"),
        sqlite3_s,
        thousands((messages as f64 / sqlite3_s) as u64),
        thousands(sqlite3_bytes),
        sqlite3_bytes as f64 / 1e6 / sqlite3_s
    );
    println!(
        "  {:<44} {:>9.2} {:>12} {:>14} {:>9.1}",
        "ferry EAB export over SFTP (worker run)",
        ferry_s,
        thousands((child.rows as f64 / ferry_s) as u64),
        thousands(child.bytes),
        child.bytes as f64 / 1e6 / ferry_s
    );
    println!();
    println!(
        "  ferry/sqlite3 time = {ratio:.2}  (goal <= {TIME_GOAL:.1}: {})",
        if ratio <= TIME_GOAL { "met" } else { "not met" }
    );
    println!(
        "  ferry peak RSS (VmHWM of the export's process) = {hwm:.1} MB  (goal <= {RSS_GOAL_MB:.0} MB: {})",
        if hwm <= RSS_GOAL_MB { "met" } else { "not met" }
    );
    println!(
        "    RSS before the run {:.1} MB; highest sampled anonymous {:.1} MB, file-backed {:.1} MB",
        mb(child.rss_before_kb),
        mb(child.max_anon_kb),
        mb(child.max_file_kb)
    );
    println!(
        "  ferry CPU: {:.2} s user + {:.2} s system in the export's process; machine busy {:.2} CPU-s \
         of {:.2} available ({} cores); child process wall {:.2} s",
        child.cpu_user,
        child.cpu_system,
        child.machine_busy,
        ferry_s * cores() as f64,
        cores(),
        child_wall.as_secs_f64()
    );
    if keep {
        let path = dir.keep();
        println!();
        println!("kept {}", path.display());
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn filters_json() -> Value {
    json!({
        "channels": Channel::ALL,
        "types": MessageType::ALL,
        "directions": Direction::ALL,
    })
}

fn in_list(col: &str, values: impl IntoIterator<Item = &'static str>) -> String {
    let list: Vec<String> = values.into_iter().map(|v| format!("'{v}'")).collect();
    format!("{col} IN ({})", list.join(", "))
}

/// The fields an EAB note is made of (the message and its contact), joined, in sequence order,
/// with the same window and filters as the export's statement.
fn baseline_sql(institution_id: i64, messages: u64) -> String {
    format!(
        "SELECT m.id, m.contact_id, c.crm_id, c.first_name, c.last_name, c.preferred_name, \
         m.channel, m.type, m.direction, m.body, m.sent_at \
         FROM messages m JOIN contacts c ON c.id = m.contact_id \
         WHERE m.institution_id = {institution_id} AND m.seq > 0 AND m.seq <= {messages} \
         AND {} AND {} AND {} AND c.test_user = FALSE ORDER BY m.seq",
        in_list("m.channel", Channel::ALL.iter().map(|c| c.as_str())),
        in_list("m.type", MessageType::ALL.iter().map(|t| t.as_str())),
        in_list("m.direction", Direction::ALL.iter().map(|d| d.as_str())),
    )
}

/// Realistic message bodies: the demo's campaign lines, questions, answers and follow-ups, with
/// first names filled in.
fn bodies() -> Vec<String> {
    let mut out = Vec::new();
    let mut rng = crate::prng::Rng::new(0x00B0_D1E5);
    let mut fill = |s: &str| s.replace("{first}", rng.pick::<&str>(fake::FIRST_NAMES));
    for topic in fake::TOPICS {
        for s in topic
            .campaign
            .iter()
            .chain(topic.questions)
            .chain(topic.answers)
        {
            out.push(fill(s));
        }
    }
    for s in fake::LIVE_AGENT_LINES
        .iter()
        .chain(fake::INCOMING_FOLLOW_UPS)
    {
        out.push(fill(s));
    }
    out
}

fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Inserts `messages` messages into Ferry's `messages` table with the sqlite3 shell, spread over
/// the institution's contacts and the 90 days before now, with sequences 1..=N (as Ferry's own
/// insert would give them), and sets the institution's message sequence.
fn insert_messages(db: &Path, institution_id: i64, contacts: u64, messages: u64) -> Result<()> {
    let bodies = bodies();
    let values = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| format!("({i}, {})", sql_text(b)))
        .collect::<Vec<_>>()
        .join(", ");
    let now = jiff::Timestamp::now().as_microsecond();
    let span: i64 = 90 * 24 * 3600 * 1_000_000;
    let start = now - span;
    let step = span / messages as i64;
    let nb = bodies.len();
    // Multiplicative hashes spread contacts and bodies without a visible pattern; channel, type
    // and direction are mixed roughly as the demo's data is.
    let script = format!(
        ".bail on\n\
         PRAGMA journal_mode = DELETE;\n\
         PRAGMA synchronous = OFF;\n\
         PRAGMA cache_size = -1048576;\n\
         BEGIN;\n\
         CREATE TEMP TABLE bodies (i INTEGER PRIMARY KEY, body TEXT NOT NULL);\n\
         INSERT INTO bodies (i, body) VALUES {values};\n\
         CREATE TEMP TABLE cids (i INTEGER PRIMARY KEY, id INTEGER NOT NULL);\n\
         INSERT INTO cids (i, id) SELECT row_number() OVER (ORDER BY id) - 1, id FROM contacts WHERE institution_id = {institution_id};\n\
         WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {messages})\n\
         INSERT INTO messages (institution_id, contact_id, channel, type, direction, body, sent_at, seq, created_at)\n\
         SELECT {institution_id},\n\
           (SELECT id FROM cids WHERE i = (x * 2654435761) % {contacts}),\n\
           CASE WHEN (x * 7919) % 100 < 60 THEN 'sms' WHEN (x * 7919) % 100 < 80 THEN 'web_chat' WHEN (x * 7919) % 100 < 88 THEN 'email' ELSE 'whatsapp' END,\n\
           CASE (x * 104729) % 5 WHEN 0 THEN 'campaign' WHEN 1 THEN 'live_chat' ELSE 'ai_agent' END,\n\
           CASE (x * 31) % 2 WHEN 0 THEN 'outgoing' ELSE 'incoming' END,\n\
           (SELECT body FROM bodies WHERE i = (x * 40503) % {nb}),\n\
           {start} + x * {step}, x, {now}\n\
         FROM s;\n\
         UPDATE institutions SET message_seq = {messages} WHERE id = {institution_id};\n\
         COMMIT;\n\
         PRAGMA journal_mode = WAL;\n"
    );
    run_sqlite3(db, &script, "insert messages")?;
    Ok(())
}

fn count_lines(path: &Path) -> Result<u64> {
    let mut r = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut n = 0u64;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(n);
        }
        n += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let len = buf.len();
        r.consume(len);
    }
}

/// `ferry bench export-run`: in a child process, queue one run of the integration, execute it
/// with a worker, and print a [`ChildReport`] as one JSON line.
pub async fn export_run(
    store_dir: &Path,
    institution_id: i64,
    integration_id: i64,
    public_url: &str,
) -> Result<()> {
    let key =
        std::env::var(MASTER_KEY_ENV).with_context(|| format!("{MASTER_KEY_ENV} is not set"))?;
    let key = MasterKey::parse(&key).map_err(anyhow::Error::msg)?;
    let store = Store::connect(
        &ferry_store::default_sqlite_url(store_dir),
        SecretBox::new(key),
    )
    .await?;
    // A failed export fails the benchmark at once instead of being retried after a backoff.
    let config = WorkerConfig {
        retries: 0,
        ..WorkerConfig::default()
    };
    let worker = Worker::new(store.clone(), Registry::builtin(public_url), config);

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut anon, mut file) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let status = proc_status();
                anon = anon.max(field_kb(&status, "RssAnon:"));
                file = file.max(field_kb(&status, "RssFile:"));
                std::thread::sleep(Duration::from_millis(10));
            }
            (anon, file)
        })
    };
    let rss_before_kb = field_kb(&proc_status(), "VmRSS:");
    let cpu0 = self_cpu();
    let busy0 = machine_busy();
    let t = Instant::now();
    let run = store
        .enqueue_run(&NewRun {
            institution_id,
            integration_id,
            kind: "eab_notes_export".into(),
            trigger: Trigger::Manual,
            scheduled_for: None,
        })
        .await?
        .context("a run of the integration is queued already")?;
    worker.run_once().await?;
    let seconds = t.elapsed().as_secs_f64();
    let cpu1 = self_cpu();
    let busy1 = machine_busy();
    stop.store(true, Ordering::Relaxed);
    let (max_anon_kb, max_file_kb) = sampler.join().unwrap_or((0, 0));
    let hwm_kb = field_kb(&proc_status(), "VmHWM:");
    let run = store.run(institution_id, run.id).await?;
    store.close().await;
    let report = ChildReport {
        seconds,
        status: run.status.as_str().to_string(),
        rows: run.rows,
        bytes: run.detail["bytes"].as_u64().unwrap_or(0),
        file: run.detail["file"].as_str().unwrap_or("").to_string(),
        error: run.error,
        cpu_user: cpu1.0 - cpu0.0,
        cpu_system: cpu1.1 - cpu0.1,
        machine_busy: busy1 - busy0,
        rss_before_kb,
        hwm_kb,
        max_anon_kb,
        max_file_kb,
    };
    println!("{}", report.to_json());
    Ok(())
}

fn proc_status() -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open("/proc/self/status") {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// A `kB` field of /proc/self/status (0 where there is none, e.g. not on Linux).
fn field_kb(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Clock ticks per second of /proc's CPU times (USER_HZ, 100 on every Linux we run on).
const TICKS: f64 = 100.0;

/// This process's (user, system) CPU seconds, from /proc/self/stat.
fn self_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / TICKS;
    (get(11), get(12))
}

/// CPU-seconds the whole machine has been busy (not idle or waiting for I/O), from /proc/stat.
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else {
        return 0.0;
    };
    let v: Vec<f64> = cpu
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is counted in user already)
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum();
    busy / TICKS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_parse() {
        let s = "Name:\tferry\nVmHWM:\t   51234 kB\nVmRSS:\t  40000 kB\n";
        assert_eq!(field_kb(s, "VmHWM:"), 51_234);
        assert_eq!(field_kb(s, "RssAnon:"), 0);
    }

    #[test]
    fn the_child_report_survives_json() {
        let r = ChildReport {
            seconds: 1.5,
            status: "success".into(),
            rows: 7,
            bytes: 700,
            file: "eab_notes_x.csv".into(),
            error: None,
            hwm_kb: 40_000,
            ..Default::default()
        };
        assert_eq!(ChildReport::from_json(&r.to_json()), r);
    }

    #[test]
    fn bodies_are_filled_in() {
        let b = bodies();
        assert!(b.len() > 50);
        assert!(
            b.iter()
                .all(|s| !s.contains("{first}") && !s.contains('\n'))
        );
    }
}
