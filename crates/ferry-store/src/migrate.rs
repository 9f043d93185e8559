//! Migrations: numbered SQL files per backend, applied once each, in order, under a lock.

use sqlx::{Executor, Row};

use crate::{Backend, Result, Store, util};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init",
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_crm_accounts",
        sqlite: include_str!("../migrations/sqlite/0002_crm_accounts.sql"),
        postgres: include_str!("../migrations/postgres/0002_crm_accounts.sql"),
    },
    Migration {
        version: 3,
        name: "0003_cleared_fields",
        sqlite: include_str!("../migrations/sqlite/0003_cleared_fields.sql"),
        postgres: include_str!("../migrations/postgres/0003_cleared_fields.sql"),
    },
    Migration {
        version: 4,
        name: "0004_opt_in_status_and_address",
        sqlite: include_str!("../migrations/sqlite/0004_opt_in_status_and_address.sql"),
        postgres: include_str!("../migrations/postgres/0004_opt_in_status_and_address.sql"),
    },
    Migration {
        version: 5,
        name: "0005_sftp_server",
        sqlite: include_str!("../migrations/sqlite/0005_sftp_server.sql"),
        postgres: include_str!("../migrations/postgres/0005_sftp_server.sql"),
    },
    Migration {
        version: 6,
        name: "0006_auth_audit",
        sqlite: include_str!("../migrations/sqlite/0006_auth_audit.sql"),
        postgres: include_str!("../migrations/postgres/0006_auth_audit.sql"),
    },
    Migration {
        version: 7,
        name: "0007_opt_in_paths",
        sqlite: include_str!("../migrations/sqlite/0007_opt_in_paths.sql"),
        postgres: include_str!("../migrations/postgres/0007_opt_in_paths.sql"),
    },
    Migration {
        version: 9,
        name: "0009_alerts",
        sqlite: include_str!("../migrations/sqlite/0009_alerts.sql"),
        postgres: include_str!("../migrations/postgres/0009_alerts.sql"),
    },
    Migration {
        version: 10,
        name: "0010_bulk_files",
        sqlite: include_str!("../migrations/sqlite/0010_bulk_files.sql"),
        postgres: include_str!("../migrations/postgres/0010_bulk_files.sql"),
    },
    Migration {
        version: 11,
        name: "0011_sync_log_contact",
        sqlite: include_str!("../migrations/sqlite/0011_sync_log_contact.sql"),
        postgres: include_str!("../migrations/postgres/0011_sync_log_contact.sql"),
    },
    Migration {
        version: 12,
        name: "0012_sync_log_run",
        sqlite: include_str!("../migrations/sqlite/0012_sync_log_run.sql"),
        postgres: include_str!("../migrations/postgres/0012_sync_log_run.sql"),
    },
    Migration {
        version: 13,
        name: "0013_oauth_pkce",
        sqlite: include_str!("../migrations/sqlite/0013_oauth_pkce.sql"),
        postgres: include_str!("../migrations/postgres/0013_oauth_pkce.sql"),
    },
    Migration {
        version: 14,
        name: "0014_contact_sync",
        sqlite: include_str!("../migrations/sqlite/0014_contact_sync.sql"),
        postgres: include_str!("../migrations/postgres/0014_contact_sync.sql"),
    },
];

/// Applies what is missing; returns the names applied.
pub(crate) async fn run(store: &Store) -> Result<Vec<&'static str>> {
    let mut tx = store.begin_write().await?;
    if store.backend == Backend::Postgres {
        // Several workers may start at once: one migrates, the others wait and then see it done.
        tx.execute("SELECT pg_advisory_xact_lock(7236410091)")
            .await?;
    }
    tx.execute("CREATE TABLE IF NOT EXISTS ferry_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)").await?;
    let done: Vec<i64> = sqlx::query("SELECT version FROM ferry_migrations")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        let sql = match store.backend {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO ferry_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(util::now())
            .execute(&mut *tx)
            .await?;
        applied.push(m.name);
    }
    tx.commit().await?;
    Ok(applied)
}
