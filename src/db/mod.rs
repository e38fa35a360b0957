//! The database: connecting (SQLite with WAL and foreign keys, or PostgreSQL), migrating, the
//! sea-orm entities, and the queries the services need, one module per aggregate.

pub mod chunk_tables;
pub mod deltas;
pub mod entities;
pub mod firmware;
mod redact;
pub mod report_timeline;
pub mod rollout_events;

pub use redact::without_password;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, IsolationLevel, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::config::DatabaseSettings;

/// The advisory lock migrations hold on PostgreSQL ("nwotamig" in ASCII): any fixed key that
/// nothing else uses.
const MIGRATION_LOCK: i64 = 0x6e77_6f74_616d_6967;

/// Opens the pool. A SQLite file and its directory are created if missing.
///
/// A request waits at most `database.acquire_timeout_s` for a connection: with PostgreSQL
/// stopped the pool keeps trying to connect until then, and every request that needs the
/// database would otherwise hold its client that long before its 503.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<DatabaseConnection> {
    let acquire = Duration::from_secs(settings.acquire_timeout_s);
    let mut options = ConnectOptions::new(settings.url.clone());
    // sea-orm applies both as the pool's acquire timeout, the later one winning.
    options
        .max_connections(settings.max_connections)
        .connect_timeout(acquire)
        .acquire_timeout(acquire)
        .sqlx_logging(false);
    if let Some(path) = sqlite_path(&settings.url) {
        if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("`database.url`: cannot create {}: {e}", dir.display()))?;
        }
        options.map_sqlx_sqlite_opts(|opts| {
            opts.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
        });
    }
    Database::connect(options).await.map_err(|e| {
        anyhow::anyhow!("`database.url`: cannot connect: {}", without_password(&e.to_string(), &settings.url))
    })
}

/// The file path of a `sqlite://PATH[?...]` URL, unless it is in memory.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then_some(path)
}

/// Applies every pending migration.
///
/// On PostgreSQL, under an advisory lock: replicas started together would otherwise create the
/// same tables at once, and all but one fail (`duplicate key value violates unique constraint
/// "pg_type_typname_nsp_index"`). The lock is session-level, on a connection of its own outside
/// the pool, so it is held across the migrations' own transactions and cannot be left behind
/// in a pooled connection; PostgreSQL drops it with the session if this process dies.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        Migrator::up(db, None).await?;
        return Ok(());
    }
    use sea_orm::sqlx::Connection;
    let options = db.get_postgres_connection_pool().connect_options();
    let mut session = sea_orm::sqlx::PgConnection::connect_with(&options).await?;
    sea_orm::sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK).execute(&mut session).await?;
    let migrated = Migrator::up(db, None).await;
    let unlocked = sea_orm::sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut session)
        .await;
    // Closing the session releases the lock too, should the unlock have failed.
    let _ = session.close().await;
    migrated?;
    unlocked?;
    Ok(())
}

/// Starts a transaction that will write. On SQLite it takes the write lock up front
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes fails at once with
/// "database is locked" when another writer committed in between, whatever the busy timeout,
/// while an immediate one waits its turn. PostgreSQL ignores the mode.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, sea_orm::DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Starts a read-only transaction whose reads all see one snapshot, for queries that must agree
/// with each other (a rollout row and its events): a write committed between them stays out of
/// sight. PostgreSQL needs REPEATABLE READ for that (READ COMMITTED takes a snapshot per
/// statement); SQLite in WAL mode keeps its first read's snapshot for the whole transaction.
pub async fn begin_snapshot(db: &DatabaseConnection) -> Result<DatabaseTransaction, sea_orm::DbErr> {
    let postgres = db.get_database_backend() == DatabaseBackend::Postgres;
    db.begin_with_options(TransactionOptions {
        isolation_level: postgres.then_some(IsolationLevel::RepeatableRead),
        access_mode: postgres.then_some(AccessMode::ReadOnly),
        ..Default::default()
    })
    .await
}

/// Why the database could not be reached, in a few fixed words for `/readyz`: never the URL,
/// nor what the server said (which may name users or databases).
pub fn unavailable_reason(e: &sea_orm::DbErr, acquire_timeout_s: u64) -> String {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};
    let timed_out = || format!("no connection within {acquire_timeout_s} s");
    let runtime = match e {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => return timed_out(),
        DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) => return "connection pool closed".into(),
        DbErr::Conn(runtime) | DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime,
        _ => return "query failed".into(),
    };
    let RuntimeErr::SqlxError(error) = runtime else { return "query failed".into() };
    match error.as_ref() {
        Sqlx::PoolTimedOut => timed_out(),
        Sqlx::PoolClosed => "connection pool closed".into(),
        Sqlx::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        Sqlx::Io(_) | Sqlx::WorkerCrashed => "connection lost".into(),
        Sqlx::Tls(_) => "TLS failure".into(),
        Sqlx::Database(db) => match db.code().as_deref() {
            Some("57P01" | "57P02") => "the server is shutting down".into(),
            Some("57P03") => "the server is starting up".into(),
            Some(code) if code.starts_with("08") => "connection failure".into(),
            _ => "query failed".into(),
        },
        _ => "query failed".into(),
    }
}

/// A trivial round trip, for `/readyz`.
pub async fn ping(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    db.execute_unprepared("SELECT 1").await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::sqlite_path;

    #[test]
    fn sqlite_paths_are_read_from_urls() {
        assert_eq!(sqlite_path("sqlite://data/x.db?mode=rwc"), Some("data/x.db"));
        assert_eq!(sqlite_path("sqlite:///tmp/x.db"), Some("/tmp/x.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }
}
