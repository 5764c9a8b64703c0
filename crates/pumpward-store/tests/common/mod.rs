//! Opens a fresh store on each backend for the shared store test suite.
//!
//! SQLite runs everywhere. PostgreSQL runs when `PUMPWARD_TEST_DATABASE_URL`
//! names a server where the role may create databases (`.ci/run` sets this
//! up); each test gets a database of its own. Without the variable the
//! PostgreSQL half prints why it is skipped — and fails under CI, where a
//! skipped backend would hide a broken one.

#![allow(dead_code)]

use pumpward_store::Store;
use sqlx::Connection;

pub struct Fresh {
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    /// The server URL and the test's own PostgreSQL database, dropped by
    /// [`Fresh::finish`] once the test passed (a failed test keeps it for
    /// a look).
    pg: Option<(String, String)>,
}

impl Fresh {
    /// Closes the store; a PostgreSQL test database is dropped, so that a
    /// developer's server does not gather one per test run.
    pub async fn finish(self) {
        self.store.close().await;
        if let Some((url, name)) = self.pg {
            if let Ok(mut admin) = sqlx::PgConnection::connect(&url).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(&mut admin)
                    .await;
                admin.close().await.ok();
            }
        }
    }
}

pub async fn sqlite() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path()).await.unwrap();
    Fresh {
        store,
        pg: None,
        _dir: Some(dir),
    }
}

pub async fn postgres() -> Option<Fresh> {
    let Ok(url) = std::env::var("PUMPWARD_TEST_DATABASE_URL") else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("PUMPWARD_TEST_DATABASE_URL is not set under CI: the PostgreSQL backend would go untested");
        }
        eprintln!("SKIPPED (PostgreSQL half): PUMPWARD_TEST_DATABASE_URL is not set; run scripts/pg-test-setup");
        return None;
    };
    let name = format!("pw_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&url)
        .await
        .expect("connect to PUMPWARD_TEST_DATABASE_URL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.ok();
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&url);
    let store = Store::open_postgres(&format!("{base}/{name}"))
        .await
        .unwrap();
    Some(Fresh {
        store,
        _dir: None,
        pg: Some((url.clone(), name)),
    })
}

/// Runs an async test body against SQLite and PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let f = $crate::common::sqlite().await;
                    super::$name(&f.store).await;
                }
                #[tokio::test]
                async fn postgres() {
                    if let Some(f) = $crate::common::postgres().await {
                        super::$name(&f.store).await;
                        f.finish().await;
                    }
                }
            }
        )+
    };
}
