//! What the tests of the `ferry` binary share: a data directory per test and the commands that
//! use it.

#![allow(dead_code)] // each test binary uses its own part

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use ferry_store::{MasterKey, SecretBox, Store};

pub const BIN: &str = env!("CARGO_BIN_EXE_ferry");

/// A data directory of its own, and commands that use it.
pub struct Ferry {
    _tmp: tempfile::TempDir,
    pub data: PathBuf,
}

impl Ferry {
    pub fn new() -> Ferry {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");
        Ferry { _tmp: tmp, data }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        for var in [
            "FERRY_DATABASE_URL",
            "FERRY_MASTER_KEY",
            "FERRY_LISTEN",
            "FERRY_PUBLIC_URL",
            "FERRY_LOG_FORMAT",
            "FERRY_WORKER_HEARTBEAT_SECS",
            "FERRY_WORKER_LEASE_SECS",
            "RUST_LOG",
        ] {
            c.env_remove(var);
        }
        c.env("FERRY_DATA_DIR", &self.data)
            // Tests run side by side: their SFTP servers take free ports.
            .env("FERRY_SFTP_LISTEN", "127.0.0.1:0")
            .env("FERRY_LOG", "warn")
            .stdin(Stdio::null());
        c
    }

    /// Runs `ferry ARGS` with `stdin`; returns the output.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ferry");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run ferry")
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_success(&out, args);
        stdout(&out)
    }

    /// Opens the store the commands wrote (any master key reads contacts and users).
    pub async fn store(&self) -> Store {
        Store::connect(
            &ferry_store::default_sqlite_url(&self.data),
            SecretBox::new(MasterKey::generate()),
        )
        .await
        .expect("open the store")
    }

    /// Opens the store with the master key of the data directory, as the commands do, so that
    /// secrets written here are readable by them.
    pub async fn keyed_store(&self) -> Store {
        let key = MasterKey::load_or_create(&self.data.join("master.key")).expect("master key");
        Store::connect(
            &ferry_store::default_sqlite_url(&self.data),
            SecretBox::new(key),
        )
        .await
        .expect("open the store")
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self._tmp.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn assert_success(out: &Output, args: &[&str]) {
    assert!(
        out.status.success(),
        "ferry {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
}
