//! Read-your-writes waits are woken by the projections' checkpoint announcements: the query
//! service's listener hears a committed checkpoint of its own schemas, and not one of a schema it
//! does not read (a rebuild's fresh schema, a benchmark's scratch one).

use std::time::Duration;

use readmodel::Projection;
use sqlx::{AssertSqlSafe, Connection, PgPool};
use test_support::TestDatabase;

async fn commit_checkpoint(pool: &PgPool, schema: &str, projection: Projection, sequence: u64) {
    let mut conn = pool.acquire().await.expect("connection");
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query(AssertSqlSafe(format!(
        "SET LOCAL search_path TO \"{schema}\""
    )))
    .execute(&mut *tx)
    .await
    .expect("search path");
    readmodel::save_checkpoint(&mut tx, projection, sequence, None)
        .await
        .expect("save");
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn the_listener_wakes_waits_on_its_own_schemas_checkpoints_only() {
    let database = TestDatabase::create();
    let pool = PgPool::connect(&database.url()).await.expect("pool");
    for prefix in ["", "elsewhere_"] {
        readmodel::prepare_read_model(&pool, prefix)
            .await
            .expect("prepare the read model");
    }
    let config = query_api::Config::new(
        database.url(),
        b"test-secret-test-secret-test-secret!".to_vec(),
    );
    let read_model = query_api::db::ReadModel::connect(&config).expect("read model");
    let mut signal = query_api::consistency::listen_for_checkpoints(
        read_model.listen.clone(),
        read_model.schemas.clone(),
    );
    // The first bump says the session listens; announcements before it were never promised.
    tokio::time::timeout(Duration::from_secs(10), signal.changed())
        .await
        .expect("listening")
        .expect("signal");

    commit_checkpoint(
        &pool,
        &Projection::Core.schema("elsewhere_"),
        Projection::Core,
        3,
    )
    .await;
    commit_checkpoint(&pool, &Projection::Audit.schema(""), Projection::Audit, 5).await;
    tokio::time::timeout(Duration::from_secs(10), signal.changed())
        .await
        .expect("woken by the audit checkpoint")
        .expect("signal");
    // Exactly one bump: the other schema's checkpoint, committed first, woke nobody.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), signal.changed())
            .await
            .is_err(),
        "woken by a schema the service does not read"
    );
    read_model.listen.close().await;
}
