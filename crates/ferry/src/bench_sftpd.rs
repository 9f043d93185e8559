//! `ferry bench sftp-server`: OpenSSH `sftp` uploading a file into Ferry's own SFTP server
//! (which encrypts it at rest as it lands) against the same upload into OpenSSH's sshd (which
//! writes it plain), taking turns in one run; and Ferry's peak memory meanwhile.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_store::{MasterKey, SecretBox, SftpEntry, Store};

use super::{load_note, openssh_version, thousands, write_random};

/// Ferry's throughput over sshd's we aim for.
const THROUGHPUT_GOAL: f64 = 1.0;
/// Ferry's peak RSS we aim for, MB.
const RSS_GOAL_MB: f64 = 128.0;
const USER: &str = "bench-upload";

fn vm_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub async fn sftp_server(size_mb: u64, runs: u32) -> Result<()> {
    use ferry_sftp::testing::{Sshd, keys};

    if size_mb == 0 || runs == 0 {
        bail!("--size-mb and --runs must be at least 1");
    }
    let ssh_version = openssh_version()?;
    let load = load_note();
    let dir = tempfile::Builder::new()
        .prefix("ferry-bench-sftpd-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let size = size_mb * (1 << 20);
    let src = dir.path().join("upload.bin");
    eprintln!("Generating {size_mb} MiB of incompressible data...");
    {
        let src = src.clone();
        tokio::task::spawn_blocking(move || write_random(&src, size)).await??;
    }
    let key = dir.path().join("id_ed25519");
    keys().ed25519.write_private(&key);

    eprintln!(
        "Starting Ferry's SFTP server (fresh SQLite store, vault in the temporary directory)..."
    );
    let store_dir = dir.path().join("store");
    std::fs::create_dir(&store_dir)?;
    let store = Store::connect(
        &ferry_store::default_sqlite_url(&store_dir),
        SecretBox::new(MasterKey::generate()),
    )
    .await?;
    store.migrate().await?;
    let inst = store.create_institution("bench", "Bench", None).await?;
    let account = store.create_sftp_account(inst.id, USER).await?;
    let public =
        ferry_sftpd::parse_public_key(&keys().ed25519.public).map_err(anyhow::Error::msg)?;
    store.add_sftp_key(inst.id, account.id, &public).await?;
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
    let ferry_port = server.local_addr().port();

    eprintln!("Starting OpenSSH sshd on 127.0.0.1, writing to the same temporary directory...");
    let sshd_root = dir.path().to_path_buf();
    let sshd = match tokio::task::spawn_blocking(move || Sshd::start_in(&sshd_root)).await {
        Ok(Some(sshd)) => sshd,
        Ok(None) => bail!(
            "OpenSSH's sshd is not available as the baseline; install openssh-server and run again"
        ),
        Err(e) => bail!("OpenSSH's sshd did not start: {e}"),
    };
    let rss_before = vm_kb("VmRSS:");

    // The same `sftp` batch upload to either server; None for Ferry's.
    let upload = |port: u16, user: &str, remote: &str| -> Result<Duration> {
        let batch = dir.path().join("batch");
        std::fs::write(&batch, format!("put \"{}\" \"{remote}\"\n", src.display()))?;
        let t = Instant::now();
        let out = Command::new("sftp")
            .args(["-q", "-F", "/dev/null", "-b"])
            .arg(&batch)
            .arg("-i")
            .arg(&key)
            .args(["-P", &port.to_string()])
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
            .arg(format!("{user}@127.0.0.1"))
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
    let rate = |d: Duration| size as f64 / 1e6 / d.as_secs_f64();
    let mut best = [Duration::MAX; 2];
    let mut lines = Vec::new();
    const SERVERS: [&str; 2] = [
        "Ferry's SFTP server (AES-256-GCM at rest, store records)",
        "OpenSSH sshd (plain file)",
    ];
    for i in 0..runs as usize {
        for k in 0..2 {
            let s = (i + k) % 2;
            let _ = Command::new("sync").status();
            let name = format!("upload-{i}-{s}.bin");
            eprintln!("  run {}: {}...", i + 1, SERVERS[s]);
            let took = if s == 0 {
                let took = upload(ferry_port, USER, &format!("/{name}"))?;
                match store.sftp_lookup(account.id, &format!("/{name}")).await? {
                    Some(SftpEntry::File(f)) if f.size as u64 == size => {
                        store.sftp_remove(account.id, &f.path).await?;
                        vault.delete(&f.object_key).await?;
                    }
                    other => bail!("Ferry's server did not record the upload: {other:?}"),
                }
                took
            } else {
                let took = upload(
                    sshd.port,
                    &sshd.user,
                    &format!("{}/{name}", sshd.upload_path()),
                )?;
                let path = sshd.upload_dir.join(&name);
                let got = std::fs::metadata(&path)
                    .with_context(|| format!("{} was not uploaded", path.display()))?
                    .len();
                if got != size {
                    bail!("{} has {got} bytes, expected {size}", path.display());
                }
                std::fs::remove_file(&path)?;
                took
            };
            best[s] = best[s].min(took);
            lines.push((s, i, took));
        }
    }
    let hwm = vm_kb("VmHWM:");
    drop(sshd);
    server.shutdown().await;
    store.close().await;

    let mb = |kb: u64| kb as f64 / 1024.0;
    let ratio = rate(best[0]) / rate(best[1]);
    println!();
    println!(
        "SFTP upload of {} bytes ({size_mb} MiB, incompressible) with OpenSSH sftp ({ssh_version}, its default cipher), to a temporary directory on disk, no fsync",
        thousands(size)
    );
    println!("  ({load})");
    println!();
    println!(
        "  {:<58} {:>4} {:>9} {:>9}",
        "server", "run", "seconds", "MB/s"
    );
    lines.sort_by_key(|(s, i, _)| (*s, *i));
    for (s, i, took) in &lines {
        println!(
            "  {:<58} {:>4} {:>9.2} {:>9.1}",
            SERVERS[*s],
            i + 1,
            took.as_secs_f64(),
            rate(*took)
        );
    }
    println!();
    println!(
        "  best: Ferry {:.1} MB/s, sshd {:.1} MB/s",
        rate(best[0]),
        rate(best[1])
    );
    println!(
        "  Ferry/sshd throughput = {ratio:.2}  (goal >= {THROUGHPUT_GOAL:.1}: {})",
        if ratio >= THROUGHPUT_GOAL {
            "met"
        } else {
            "not met"
        }
    );
    let peak = mb(hwm);
    println!(
        "  peak RSS of this process, which hosts Ferry's server (VmHWM) = {peak:.1} MB  (goal <= {RSS_GOAL_MB:.0} MB: {}); RSS before the uploads {:.1} MB",
        if peak <= RSS_GOAL_MB {
            "met"
        } else {
            "not met"
        },
        mb(rss_before)
    );
    Ok(())
}
