//! Fresh stores for tests: SQLite in a temporary directory, or, when `FERRY_TEST_DATABASE_URL`
//! names a PostgreSQL database, a new schema in it. Every test gets its own, migrated.

use crate::{MasterKey, SecretBox, Store};

/// A store that lives as long as this value (the SQLite file is removed on drop).
pub struct TestStore {
    /// The store, migrated.
    pub store: Store,
    /// The database URL it was opened with (for the PostgreSQL case, with the schema's search path).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

/// Which backend the tests run on, from `FERRY_TEST_DATABASE_URL`.
pub fn test_backend_url() -> Option<String> {
    std::env::var("FERRY_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// Creates and migrates a fresh store.
pub async fn fresh_store() -> TestStore {
    let secrets = SecretBox::new(MasterKey::generate());
    match test_backend_url() {
        Some(base) => {
            let schema = format!("t_{}_{}", std::process::id(), unique());
            let admin = Store::connect(&base, secrets.clone())
                .await
                .expect("connect to FERRY_TEST_DATABASE_URL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&admin.write)
                .await
                .expect("create test schema");
            admin.close().await;
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
            let store = Store::connect(&url, secrets)
                .await
                .expect("connect to the test schema");
            store.migrate().await.expect("migrate");
            TestStore {
                store,
                url,
                _dir: None,
            }
        }
        None => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = crate::default_sqlite_url(dir.path());
            let store = Store::connect(&url, secrets).await.expect("open SQLite");
            store.migrate().await.expect("migrate");
            TestStore {
                store,
                url,
                _dir: Some(dir),
            }
        }
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}_{nanos}", N.fetch_add(1, Ordering::Relaxed))
}
