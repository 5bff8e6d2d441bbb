//! Embedded PostgreSQL migrations, applied in one transaction under an
//! advisory lock: instances starting together queue on the lock, and the
//! later ones find nothing left to do. DDL is transactional in PostgreSQL,
//! so a failed migration leaves the schema as it was.

use deadpool_postgres::Object;

use crate::store::{MigrationError, MigrationReport, StoreError};

/// Embedded migrations: (version, SQL). Append only; see
/// `store/migrations/README.md`.
pub(crate) const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_clients.sql")),
    (
        2,
        include_str!("../migrations/postgres/0002_revocations_and_changes.sql"),
    ),
    (
        3,
        include_str!("../migrations/postgres/0003_signing_keys.sql"),
    ),
    (4, include_str!("../migrations/postgres/0004_instances.sql")),
    (
        5,
        include_str!("../migrations/postgres/0005_proof_of_possession.sql"),
    ),
    (
        6,
        include_str!("../migrations/postgres/0006_audit_and_registration.sql"),
    ),
    (
        7,
        include_str!("../migrations/postgres/0007_client_assertions.sql"),
    ),
    (
        8,
        include_str!("../migrations/postgres/0008_federated_subjects.sql"),
    ),
];

/// Advisory-lock key held while migrating ("auth-mig" in ASCII).
const MIGRATION_LOCK: i64 = 0x6175_7468_2d6d_6967;

fn fail(e: tokio_postgres::Error) -> MigrationError {
    MigrationError::Bookkeeping(e.into())
}

/// Applies every migration newer than the database's version.
pub(super) async fn run(client: &mut Object) -> Result<MigrationReport, StoreError> {
    apply(client, MIGRATIONS).await
}

/// Applies the migrations of `known` that the database lacks.
pub(super) async fn apply(
    client: &mut Object,
    known: &[(u32, &str)],
) -> Result<MigrationReport, StoreError> {
    let tx = client.transaction().await.map_err(fail)?;
    // Released at commit or rollback, also if this process dies mid-way.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(fail)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at BIGINT NOT NULL
         )",
    )
    .await
    .map_err(fail)?;
    let current: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(fail)?
        .get(0);
    let current = u32::try_from(current).unwrap_or(0);
    let mut applied = Vec::new();
    for (version, sql) in known.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| MigrationError::Step {
                version: *version,
                source: e.into(),
            })?;
        let as_int =
            i32::try_from(*version).map_err(|_| MigrationError::VersionOutOfRange(*version))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) \
             VALUES ($1, EXTRACT(EPOCH FROM now())::BIGINT)",
            &[&as_int],
        )
        .await
        .map_err(fail)?;
        applied.push(*version);
    }
    tx.commit().await.map_err(fail)?;
    let known = known.last().map_or(0, |(v, _)| *v);
    Ok(MigrationReport {
        current: current.max(applied.last().copied().unwrap_or(0)),
        applied,
        known,
    })
}
