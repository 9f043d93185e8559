//! The `ferry` binary, run as a user would: in a fresh data directory per test.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_core::tenancy::Role;
use ferry_store::MasterKey;

mod support;

use support::{Ferry, assert_success, stderr, stdout};

#[test]
fn help_of_every_command_is_complete() {
    let f = Ferry::new();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &[],
            &[
                "--data-dir",
                "FERRY_DATA_DIR",
                "--database-url",
                "FERRY_DATABASE_URL",
                "--listen",
                "FERRY_LISTEN",
                "--public-url",
                "FERRY_PUBLIC_URL",
                "--trusted-proxies",
                "FERRY_TRUSTED_PROXIES",
                "--log-format",
                "FERRY_LOG_FORMAT",
                "--log",
                "FERRY_LOG",
                "FERRY_MASTER_KEY",
                "FERRY_SFTP_LISTEN",
                "serve",
                "sftp-server",
                "worker",
                "migrate",
                "institution",
                "user",
                "token",
                "import",
                "demo",
                "bench",
                "Examples",
            ],
        ),
        (
            &["serve"],
            &["--listen", "--public-url", "SIGTERM", "Examples"],
        ),
        (&["worker"], &["--once", "Examples"]),
        (&["migrate"], &["--database-url", "up to date", "Examples"]),
        (&["institution"], &["create", "list"]),
        (
            &["institution", "create"],
            &["--slug", "--name", "--time-zone", "Examples"],
        ),
        (&["institution", "list"], &["Example"]),
        (&["user"], &["create"]),
        (
            &["user", "create"],
            &[
                "--institution",
                "--email",
                "--role",
                "admin",
                "viewer",
                "standard input",
                "Examples",
            ],
        ),
        (&["token"], &["create", "list", "revoke"]),
        (
            &["token", "create"],
            &[
                "--institution",
                "--role",
                "--name",
                "--expires-in-days",
                "Bearer",
                "Examples",
            ],
        ),
        (
            &["token", "list"],
            &["--institution", "last used", "Example"],
        ),
        (&["token", "revoke"], &["<ID>", "--institution", "Example"]),
        (&["import"], &["contacts"]),
        (
            &["import", "contacts"],
            &["<FILE>", "--institution", "UNSET", "refused", "Examples"],
        ),
        (
            &["demo"],
            &[
                "Demo University",
                "admin@demo.ferry.test",
                "--contacts",
                "--messages",
                "Examples",
            ],
        ),
        (&["bench"], &["import"]),
        (
            &["emulate", "salesforce"],
            &[
                "--listen",
                "--jwt-certificate",
                "--daily-limit",
                "--tls",
                "Examples",
            ],
        ),
        (
            &["bench", "import"],
            &["--rows", "--keep", "sqlite3", "--release", "Examples"],
        ),
    ];
    for (cmd, needles) in cases {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = f.run(&args);
        assert_success(&out, &args);
        let text = stdout(&out);
        for n in *needles {
            assert!(
                text.contains(n),
                "`ferry {}` does not mention {n:?}:\n{text}",
                args.join(" ")
            );
        }
        // The master key is never a flag (flags show in `ps`).
        assert!(!text.contains("--master-key"), "{text}");
    }
    assert!(
        !f.data.exists(),
        "--help must not create the data directory"
    );
}

#[test]
fn migrate_twice_creates_a_private_data_dir_and_logs_json() {
    let f = Ferry::new();
    let out = f
        .cmd()
        .args(["migrate"])
        .env("FERRY_LOG", "info")
        .env("FERRY_LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_success(&out, &["migrate"]);
    assert!(
        stdout(&out).contains("applied 0001_init"),
        "{}",
        stdout(&out)
    );
    let logs = stderr(&out);
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["message"] == "applied migration"),
        "{logs}"
    );
    assert_eq!(f.ok(&["migrate"]).trim(), "database is up to date");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&f.data), 0o700);
        assert_eq!(mode(&f.data.join("master.key")), 0o600);
    }
    assert!(f.data.join("ferry.db").exists());
}

#[test]
fn bad_settings_are_refused_without_leaking_passwords() {
    let f = Ferry::new();
    let out = f.run(&[
        "migrate",
        "--database-url",
        "mysql://root:hunter2@localhost/ferry",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("unsupported database URL"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    let out = f
        .cmd()
        .args(["migrate"])
        .env("FERRY_MASTER_KEY", "not-a-key")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("FERRY_MASTER_KEY"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("not-a-key"), "{}", stderr(&out));

    let out = f.run(&["migrate", "--log", "info,[[["]);
    assert!(!out.status.success());
}

#[tokio::test]
async fn institution_then_token_prints_only_the_token() {
    let f = Ferry::new();
    let out = f.ok(&[
        "institution",
        "create",
        "--slug",
        "acme",
        "--name",
        "Acme College",
        "--time-zone",
        "America/Chicago",
    ]);
    assert!(out.contains("id=1") && out.contains("slug=acme"), "{out}");

    let dup = f.run(&["institution", "create", "--slug", "acme", "--name", "Again"]);
    assert!(!dup.status.success());
    assert!(stderr(&dup).contains("exists"), "{}", stderr(&dup));

    let out = f.run(&[
        "token",
        "create",
        "--institution",
        "acme",
        "--role",
        "admin",
        "--name",
        "crm",
    ]);
    assert_success(&out, &["token", "create"]);
    let text = stdout(&out);
    let token = text.trim_end_matches('\n');
    assert!(token.starts_with("fry_"), "{text:?}");
    assert!(
        !token.contains(char::is_whitespace),
        "only the token on stdout: {text:?}"
    );
    assert_eq!(text, format!("{token}\n"));

    let store = f.store().await;
    let p = store
        .authenticate_token(token)
        .await
        .unwrap()
        .expect("the printed token authenticates");
    assert_eq!(p.institution.slug, "acme");
    assert_eq!(p.role, Role::Admin);
    store.close().await;

    let missing = f.run(&[
        "token",
        "create",
        "--institution",
        "nope",
        "--role",
        "viewer",
    ]);
    assert!(!missing.status.success());
    assert!(stdout(&missing).is_empty());
    assert!(
        stderr(&missing).contains("institution create"),
        "{}",
        stderr(&missing)
    );

    let listed = f.ok(&["institution", "list"]);
    assert!(
        listed.contains("acme") && listed.contains("Acme College"),
        "{listed}"
    );
}

#[tokio::test]
async fn token_list_and_revoke_from_the_command_line() {
    let f = Ferry::new();
    f.ok(&["institution", "create", "--slug", "acme", "--name", "Acme"]);
    let secret = f.ok(&[
        "token",
        "create",
        "--institution",
        "acme",
        "--role",
        "viewer",
        "--name",
        "reports",
        "--expires-in-days",
        "30",
    ]);
    let secret = secret.trim();
    let listed = f.ok(&["token", "list", "--institution", "acme"]);
    let line = listed
        .lines()
        .find(|l| l.ends_with("reports"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(line.contains("viewer") && line.contains("active"), "{line}");
    assert!(line.contains("never"), "not used yet: {line}");
    assert!(!listed.contains(secret), "never the secret: {listed}");

    let store = f.store().await;
    assert!(store.authenticate_token(secret).await.unwrap().is_some());
    let listed = f.ok(&["token", "list", "--institution", "acme"]);
    let line = listed.lines().find(|l| l.ends_with("reports")).unwrap();
    assert!(
        !line.contains("never"),
        "used now, expires in 30 days: {line}"
    );

    let id = line.split_whitespace().next().unwrap().to_string();
    let out = f.ok(&["token", "revoke", &id, "--institution", "acme"]);
    assert!(out.contains("revoked"), "{out}");
    assert!(
        store.authenticate_token(secret).await.unwrap().is_none(),
        "a revoked token stops at once"
    );
    let listed = f.ok(&["token", "list", "--institution", "acme"]);
    assert!(listed.contains("revoked"), "{listed}");
    let missing = f.run(&["token", "revoke", "999", "--institution", "acme"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("token list"),
        "{}",
        stderr(&missing)
    );

    // Both changes are in the audit log, by the command line.
    let inst = store.institution_by_slug("acme").await.unwrap().unwrap();
    let log = store
        .audit_log(
            inst.id,
            &ferry_store::AuditQuery {
                kind: Some("token".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = log.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["token.revoked", "token.created"]);
    assert!(
        log.entries
            .iter()
            .all(|e| e.actor_kind == ferry_store::ActorKind::Cli)
    );
    store.close().await;
}

#[tokio::test]
async fn user_create_reads_the_password_from_stdin_or_generates_one() {
    let f = Ferry::new();
    f.ok(&["institution", "create", "--slug", "acme", "--name", "Acme"]);
    f.ok(&["institution", "create", "--slug", "beta", "--name", "Beta"]);

    let args = [
        "user",
        "create",
        "--institution",
        "acme",
        "--email",
        "Ana@Example.EDU",
        "--role",
        "admin",
    ];
    let out = f.run_with_stdin(&args, "correct horse battery\nignored second line\n");
    assert_success(&out, &args);
    let text = stdout(&out);
    assert!(
        text.contains("created user") && text.contains("admin"),
        "{text}"
    );
    assert!(
        !text.contains("correct horse"),
        "the password is not echoed: {text}"
    );

    // An existing user gets the role instead.
    let args = [
        "user",
        "create",
        "--institution",
        "beta",
        "--email",
        "ana@example.edu",
        "--role",
        "viewer",
    ];
    let out = f.run_with_stdin(&args, "another password\n");
    assert_success(&out, &args);
    assert!(stdout(&out).contains("already exists"), "{}", stdout(&out));

    // No stdin: a password is generated and printed once.
    let out = f.ok(&[
        "user",
        "create",
        "--institution",
        "acme",
        "--email",
        "bo@example.edu",
        "--role",
        "viewer",
    ]);
    let generated = out
        .lines()
        .find_map(|l| l.strip_prefix("password (shown once, store it now): "))
        .unwrap_or_else(|| panic!("no generated password in {out}"))
        .to_string();
    assert!(generated.len() >= 20);

    let short = f.run_with_stdin(
        &[
            "user",
            "create",
            "--institution",
            "acme",
            "--email",
            "cy@example.edu",
            "--role",
            "admin",
        ],
        "short\n",
    );
    assert!(!short.status.success());
    assert!(stderr(&short).contains("at least"), "{}", stderr(&short));

    let store = f.store().await;
    let ana = store
        .verify_login("ana@example.edu", "correct horse battery")
        .await
        .unwrap()
        .expect("the password from stdin works");
    let roles: Vec<(String, Role)> = store
        .memberships(ana.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.institution.slug, m.role))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("acme".to_string(), Role::Admin),
            ("beta".to_string(), Role::Viewer)
        ]
    );
    assert!(
        store
            .verify_login("ana@example.edu", "another password")
            .await
            .unwrap()
            .is_none(),
        "granting a role leaves the password alone"
    );
    assert!(
        store
            .verify_login("bo@example.edu", &generated)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .user_by_email("cy@example.edu")
            .await
            .unwrap()
            .is_none()
    );
    store.close().await;
}

#[tokio::test]
async fn import_contacts_reports_row_errors_and_refuses_bad_files() {
    let f = Ferry::new();
    f.ok(&["institution", "create", "--slug", "acme", "--name", "Acme"]);
    let csv = f.write(
        "contacts.csv",
        "first_name,last_name,phone,email,crm_id\n\
         Ana,Lopez,(617) 555-0101,ana@example.edu,0035e00000A1\n\
         Bo,Chen,not a phone,bo@example.edu,0035e00000A2\n\
         Cy,Diaz,212-555-0102,,0035e00000A3\n",
    );
    let path = csv.to_str().unwrap();
    let run = f.run(&["import", "contacts", path, "--institution", "acme"]);
    assert_eq!(run.status.code(), Some(3), "skipped rows fail the command");
    assert!(stderr(&run).contains("--allow-skipped"), "{}", stderr(&run));
    let out = stdout(&run);
    assert!(out.contains("created:   2"), "{out}");
    assert!(out.contains("skipped:   1"), "{out}");
    assert!(
        out.contains("row 3:") && out.contains("invalid_phone"),
        "{out}"
    );
    let allowed = f.ok(&[
        "import",
        "contacts",
        path,
        "--institution",
        "acme",
        "--allow-skipped",
    ]);
    assert!(allowed.contains("skipped:   1"), "{allowed}");

    // Again: the same rows match and change nothing.
    let fixed = f.write(
        "fixed.csv",
        "first_name,last_name,phone,email,crm_id\n\
         Ana,Lopez,(617) 555-0101,ana@example.edu,0035e00000A1\n\
         Cy,Diaz,212-555-0102,,0035e00000A3\n",
    );
    let again = f.ok(&[
        "import",
        "contacts",
        fixed.to_str().unwrap(),
        "--institution",
        "acme",
    ]);
    assert!(
        again.contains("unchanged: 2") && again.contains("created:   0"),
        "{again}"
    );

    let bad = f.write(
        "bad.csv",
        "first_name,last_name,phone,favorite_color\nDee,Evans,(617) 555-0103,teal\n",
    );
    let out = f.run(&[
        "import",
        "contacts",
        bad.to_str().unwrap(),
        "--institution",
        "acme",
    ]);
    assert!(!out.status.success(), "a refused file fails");
    let err = stderr(&out);
    assert!(
        err.contains("refused") && err.contains("favorite_color"),
        "{err}"
    );

    let missing = f.run(&[
        "import",
        "contacts",
        "/nonexistent/x.csv",
        "--institution",
        "acme",
    ]);
    assert!(!missing.status.success());

    let store = f.store().await;
    let inst = store.institution_by_slug("acme").await.unwrap().unwrap();
    assert_eq!(store.count_contacts(inst.id).await.unwrap(), 2);
    store.close().await;
}

#[test]
fn migrate_against_postgres_when_configured() {
    let Some(base) = std::env::var("FERRY_TEST_DATABASE_URL")
        .ok()
        .filter(|s| s.starts_with("postgres"))
    else {
        eprintln!(
            "note: FERRY_TEST_DATABASE_URL is not a postgres:// URL; skipping the PostgreSQL migrate test"
        );
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let schema = format!(
        "ferry_cli_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let exec = |sql: String| {
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&base).await.expect("connect");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("execute");
            conn.close().await.ok();
        })
    };
    exec(format!("CREATE SCHEMA {schema}"));
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let f = Ferry::new();
    let migrate = || {
        f.cmd()
            .arg("migrate")
            .env("FERRY_DATABASE_URL", &url)
            .env("FERRY_MASTER_KEY", MasterKey::generate().to_base64())
            .output()
            .unwrap()
    };
    let first = migrate();
    let second = migrate();
    exec(format!("DROP SCHEMA {schema} CASCADE"));
    assert_success(&first, &["migrate"]);
    assert!(
        stdout(&first).contains("applied 0001_init"),
        "{}",
        stdout(&first)
    );
    assert_success(&second, &["migrate"]);
    assert_eq!(stdout(&second).trim(), "database is up to date");
    assert!(
        !f.data.exists(),
        "with PostgreSQL and FERRY_MASTER_KEY no data directory is needed"
    );
}

#[tokio::test]
async fn worker_once_runs_at_most_one_queued_run() {
    let f = Ferry::new();
    f.ok(&["institution", "create", "--slug", "acme", "--name", "Acme"]);
    assert_eq!(f.ok(&["worker", "--once"]).trim(), "no queued run");

    // A run of a kind this build has no connector for: the worker claims it and fails it.
    let store = f.store().await;
    let inst = store.institution_by_slug("acme").await.unwrap().unwrap();
    let integration = store
        .create_integration(
            inst.id,
            ferry_store::NewIntegration {
                kind: "retired_kind".into(),
                name: "Old export".into(),
                description: String::new(),
                enabled: false,
                config: serde_json::json!({}),
                secrets: None,
            },
        )
        .await
        .unwrap();
    let new_run = ferry_store::NewRun {
        institution_id: inst.id,
        integration_id: integration.id,
        kind: "retired_kind".into(),
        trigger: ferry_core::run::Trigger::Manual,
        scheduled_for: None,
    };
    let run = store.enqueue_run(&new_run).await.unwrap().expect("queued");
    store.close().await;

    assert_eq!(
        f.ok(&["worker", "--once"]).trim(),
        format!("ran run {}", run.id)
    );
    assert_eq!(f.ok(&["worker", "--once"]).trim(), "no queued run");

    let store = f.store().await;
    let done = store.run(inst.id, run.id).await.unwrap();
    assert_eq!(done.status, ferry_core::run::RunStatus::Failed);
    assert!(done.error.unwrap_or_default().contains("no connector"));
    store.close().await;
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Demo {
    child: tokio::process::Child,
    url: String,
    email: String,
    password: String,
}

/// Starts `ferry demo` and reads the URL and credentials from its box.
async fn start_demo(f: &Ferry, port: u16) -> Demo {
    use tokio::io::AsyncBufReadExt;
    let mut cmd = tokio::process::Command::from(f.cmd());
    cmd.arg("demo")
        .env("FERRY_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn ferry demo");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut email, mut password) = (None, None, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while password.is_none() {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("the demo prints its credentials in time")
            .unwrap()
            .expect("the demo exited before printing its credentials");
        let value = |key: &str| {
            line.split_once(key).map(|(_, rest)| {
                rest.trim_matches(|c: char| c.is_whitespace() || c == '│')
                    .to_string()
            })
        };
        url = url.or(value("URL:"));
        email = email.or(value("Email:"));
        password = password.or(value("Password:"));
    }
    // Keep draining stdout so the demo never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Demo {
        child,
        url: url.expect("URL in the box"),
        email: email.expect("email in the box"),
        password: password.unwrap(),
    }
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = client.get(format!("{base}healthz")).send().await;
        if r.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(Instant::now() < deadline, "/healthz did not answer in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Signs in through the login form; returns the session cookie (`name=value`).
async fn login(client: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let r = client
        .post(format!("{base}login"))
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        reqwest::StatusCode::SEE_OTHER,
        "login with the printed credentials"
    );
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("ferry_session="))
        .and_then(|c| c.split(';').next())
        .expect("a ferry_session cookie")
        .to_string()
}

async fn count_contacts(client: &reqwest::Client, base: &str, cookie: &str) -> usize {
    let mut total = 0;
    let mut cursor: Option<i64> = None;
    loop {
        let mut url = format!("{base}api/v1/contacts?limit=500");
        if let Some(c) = cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: serde_json::Value = client
            .get(url)
            .header(reqwest::header::COOKIE, cookie)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        total += page["contacts"].as_array().expect("contacts").len();
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => return total,
        }
    }
}

/// How many welcome messages wait in the demo institution's outbox.
async fn queued_welcomes(client: &reqwest::Client, url: &str, cookie: &str) -> usize {
    let queued: serde_json::Value = client
        .get(format!("{url}api/v1/outbox?limit=500"))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let queued = queued.as_array().expect("a list");
    assert!(
        queued.iter().all(|m| m["body"]
            .as_str()
            .is_some_and(|b| b.starts_with("Welcome!"))),
        "{queued:?}"
    );
    queued.len()
}

/// SIGTERM, then waits for a clean exit.
async fn stop(mut child: tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status();
    if sent.is_ok_and(|s| s.success()) {
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("the demo stops after SIGTERM")
            .unwrap();
        assert!(status.success(), "graceful shutdown exits 0: {status}");
    } else {
        child.kill().await.unwrap();
    }
}

#[tokio::test]
async fn demo_serves_sample_data_and_its_printed_credentials_work() {
    let f = Ferry::new();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let port = free_port();
    let demo = start_demo(&f, port).await;
    assert_eq!(demo.url, format!("http://127.0.0.1:{port}/"));
    assert_eq!(demo.email, "admin@demo.ferry.test");
    assert!(demo.password.len() >= 20, "{:?}", demo.password);
    wait_healthy(&client, &demo.url).await;
    let cookie = login(&client, &demo.url, &demo.email, &demo.password).await;
    // The demo's HubSpot emulator has 250 people of its own: the incoming instance's first pull
    // (queued at start) brings them in; the EveryAction instance's first run pulls its people.
    // Wait for both, then count.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let runs: serde_json::Value = client
            .get(format!("{}api/v1/runs?status=success", demo.url))
            .header(reqwest::header::COOKIE, &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let done = |kind: &str| {
            runs["runs"]
                .as_array()
                .expect("runs")
                .iter()
                .any(|r| r["kind"] == kind && r["status"] == "success")
        };
        if done("hubspot_incoming") && done("everyaction") && done("salesforce_incoming") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the demo's HubSpot, EveryAction and Salesforce pulls did not succeed: {runs}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // 1,000 students, 250 from HubSpot, the 180 of the EveryAction emulator's 300 people
    // that a conservative sync takes (US, a cell phone, an email, opted in), and the 300
    // Contacts of the Salesforce emulator.
    assert_eq!(count_contacts(&client, &demo.url, &cookie).await, 1_730);
    // Each opted-in person the EveryAction pull created has the demo path's welcome queued.
    assert_eq!(queued_welcomes(&client, &demo.url, &cookie).await, 180);
    let msgs: serde_json::Value = client
        .get(format!("{}api/v1/messages?limit=5", demo.url))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !msgs["messages"].as_array().expect("messages").is_empty(),
        "{msgs}"
    );
    stop(demo.child).await;

    // Again: the data stays as it was, and the password is new.
    let port = free_port();
    let again = start_demo(&f, port).await;
    assert_ne!(
        again.password, demo.password,
        "the password is reset on every run"
    );
    wait_healthy(&client, &again.url).await;
    let cookie = login(&client, &again.url, &again.email, &again.password).await;
    assert_eq!(
        count_contacts(&client, &again.url, &cookie).await,
        1_730,
        "nothing is added twice"
    );
    assert_eq!(
        queued_welcomes(&client, &again.url, &cookie).await,
        180,
        "no welcome is queued twice"
    );
    stop(again.child).await;

    let store = f.store().await;
    let inst = store.institution_by_slug("demo").await.unwrap().unwrap();
    assert_eq!(inst.name, "Demo University");
    assert_eq!(store.current_message_seq(inst.id).await.unwrap(), 20_000);
    store.close().await;
}

#[tokio::test]
async fn serve_answers_and_stops_on_sigterm() {
    let f = Ferry::new();
    let port = free_port();
    let mut cmd = tokio::process::Command::from(f.cmd());
    cmd.arg("serve")
        .env("FERRY_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn ferry serve");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/");
    wait_healthy(&client, &base).await;
    let r = client
        .get(format!("{base}api/v1/contacts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    stop(child).await;
    // serve migrated the fresh database before listening.
    assert_eq!(f.ok(&["migrate"]).trim(), "database is up to date");
}

#[test]
fn a_lease_close_to_the_heartbeat_is_refused() {
    let f = Ferry::new();
    let out = f
        .cmd()
        .args(["worker", "--once"])
        .env("FERRY_WORKER_HEARTBEAT_SECS", "5")
        .env("FERRY_WORKER_LEASE_SECS", "10")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("FERRY_WORKER_LEASE_SECS") && err.contains("at least 15 s"),
        "{err}"
    );
    let help = f.ok(&["worker", "--help"]);
    assert!(
        help.contains("FERRY_WORKER_HEARTBEAT_SECS") && help.contains("FERRY_WORKER_LEASE_SECS"),
        "{help}"
    );
}

/// `ferry integration` goes through the same checks as the API: a bad config is refused naming
/// its field and stores nothing; secrets never come back; runs are queued as Run now does.
#[tokio::test]
async fn integration_lifecycle_from_the_command_line() {
    let f = Ferry::new();
    f.ok(&["institution", "create", "--slug", "acme", "--name", "Acme"]);
    let types = f.ok(&["integration", "types"]);
    assert!(types.contains("eab_notes_export"), "{types}");

    let body = |host: &str| {
        serde_json::json!({
            "type": "eab_notes_export",
            "name": "Nightly EAB",
            "config": {
                "sftp": {"host": host, "port": 2222, "username": "eab", "directory": "inbox", "file_prefix": "notes_"},
                "schedule": {"blocks": [0, 7]},
                "filters": {"channels": ["sms"], "types": ["ai_agent", "live_chat"], "directions": ["incoming", "outgoing"]},
                "eab": {"import_version": "3", "institution_id": "77", "group_id": "group_id", "dedupe_contacts": false,
                        "is_private": true, "student_viewable": false, "show_on_student_report": true,
                        "created_by": "Ferry", "note_reasons": "Outreach", "note_body": "{first_name}: {message}"}
            },
            "secrets": {"password": "s3cret-canary"}
        })
        .to_string()
    };

    // No host: refused with the field, nothing stored.
    let bad = f.write("bad.json", &body(""));
    let args = ["integration", "create", "--institution", "acme", "--file"];
    let out = f.run(&[&args[..], &[bad.to_str().unwrap()]].concat());
    assert!(!out.status.success(), "a bad port was accepted");
    assert!(
        stderr(&out).contains("config.sftp.host") && stderr(&out).contains("nothing was saved"),
        "{}",
        stderr(&out)
    );
    // Several mistakes: each is named on its own line.
    let mut worse: serde_json::Value = serde_json::from_str(&body("")).unwrap();
    worse["name"] = serde_json::json!(" ");
    worse["config"]["schedule"]["blocks"] = serde_json::json!([9]);
    let worse = f.write("worse.json", &worse.to_string());
    let out = f.run(&[&args[..], &[worse.to_str().unwrap()]].concat());
    assert!(!out.status.success(), "a bad body was accepted");
    let err = stderr(&out);
    for field in ["name:", "config.sftp.host:", "config.schedule.blocks:"] {
        assert!(
            err.lines().any(|l| l.trim_start().starts_with(field)),
            "{field} missing: {err}"
        );
    }
    assert!(err.contains("3 problems; nothing was saved"), "{err}");
    assert!(
        f.ok(&["integration", "list", "--institution", "acme"])
            .contains("no integrations yet")
    );

    // From stdin, so the secret stays out of files.
    let out = f.run_with_stdin(&[&args[..], &["-"]].concat(), &body("127.0.0.1"));
    assert_success(&out, &args);
    let id = stdout(&out).trim().to_string();
    assert!(id.parse::<i64>().is_ok(), "stdout is the id: {id:?}");

    let listed = f.ok(&["integration", "list", "--institution", "acme"]);
    assert!(
        listed.contains("Nightly EAB") && listed.contains("EAB Notes"),
        "{listed}"
    );
    let shown = f.ok(&["integration", "show", &id, "--institution", "acme"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("show prints JSON");
    assert_eq!(shown["secrets_set"], serde_json::json!(["password"]));
    assert!(
        !shown.to_string().contains("s3cret-canary"),
        "a secret leaked: {shown}"
    );

    // A merge patch changes one field and keeps the rest.
    let out = f.run_with_stdin(
        &[
            "integration",
            "update",
            &id,
            "--institution",
            "acme",
            "--file",
            "-",
        ],
        r#"{"config": {"sftp": {"directory": "notes"}}}"#,
    );
    assert_success(&out, &["integration", "update"]);
    let shown = f.ok(&["integration", "show", &id, "--institution", "acme"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["config"]["sftp"]["directory"], "notes");
    assert_eq!(shown["config"]["sftp"]["port"], 2222);

    // An unknown field in the patch is refused naming it.
    let out = f.run_with_stdin(
        &[
            "integration",
            "update",
            &id,
            "--institution",
            "acme",
            "--file",
            "-",
        ],
        r#"{"config": {"sftp": {"hots": "x"}}}"#,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("hots"), "{}", stderr(&out));

    f.ok(&["integration", "disable", &id, "--institution", "acme"]);
    let shown = f.ok(&["integration", "show", &id, "--institution", "acme"]);
    assert!(shown.contains("\"enabled\": false"), "{shown}");

    // Run now queues one run; asking twice finds the queued one.
    let run = f.ok(&["integration", "run", &id, "--institution", "acme"]);
    let again = f.ok(&["integration", "run", &id, "--institution", "acme"]);
    assert_eq!(run.trim(), again.trim());

    let out = f.run(&["integration", "delete", &id, "--institution", "acme"]);
    assert!(!out.status.success() && stderr(&out).contains("--yes"));
    f.ok(&[
        "integration",
        "delete",
        &id,
        "--institution",
        "acme",
        "--yes",
    ]);
    let out = f.run(&["integration", "show", &id, "--institution", "acme"]);
    assert!(!out.status.success() && stderr(&out).contains("no such integration"));
}

/// Starts `ferry sftp-server` on `port`; returns the child and the host key lines it printed.
async fn start_sftp_server(f: &Ferry, port: u16) -> (tokio::process::Child, Vec<String>) {
    use tokio::io::AsyncBufReadExt;
    let mut cmd = tokio::process::Command::from(f.cmd());
    cmd.arg("sftp-server")
        .env("FERRY_SFTP_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn ferry sftp-server");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut keys = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while keys.len() < 3 {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("sftp-server prints its host keys")
            .unwrap()
            .expect("sftp-server is running");
        if let Some(k) = line.trim().strip_prefix("host key ") {
            keys.push(k.to_string());
        }
    }
    (child, keys)
}

#[tokio::test]
async fn sftp_server_serves_ssh_and_keeps_its_host_keys() {
    use tokio::io::AsyncReadExt;
    let f = Ferry::new();
    let port = free_port();
    let (mut child, keys) = start_sftp_server(&f, port).await;
    assert!(keys[0].starts_with("ssh-ed25519 SHA256:"), "{keys:?}");
    assert!(
        keys[1].starts_with("ecdsa-sha2-nistp256 SHA256:"),
        "{keys:?}"
    );
    assert!(keys[2].starts_with("rsa-sha2-512 SHA256:"), "{keys:?}");
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut banner = [0u8; 8];
    s.read_exact(&mut banner).await.unwrap();
    assert_eq!(&banner, b"SSH-2.0-");
    drop(s);
    child.kill().await.unwrap();
    // Started again: the same keys, from the database.
    let (mut again, keys2) = start_sftp_server(&f, free_port()).await;
    assert_eq!(keys, keys2);
    again.kill().await.unwrap();
    // Off: nothing to serve.
    let out = f
        .cmd()
        .arg("sftp-server")
        .env("FERRY_SFTP_LISTEN", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("off"));
}
