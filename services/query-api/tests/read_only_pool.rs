//! The query service's pool reads as the reader role, read-only, with the projections' schemas on
//! its search path: no statement through it can change the read model, even one that asks to.

use sqlx::PgPool;
use test_support::TestDatabase;

#[tokio::test]
async fn the_query_pool_is_read_only() {
    let database = TestDatabase::create();
    let admin = PgPool::connect(&database.url()).await.expect("pool");
    readmodel::prepare_read_model(&admin, "")
        .await
        .expect("prepare the read model");
    let config = query_api::Config::new(
        database.url(),
        b"test-secret-test-secret-test-secret!".to_vec(),
    );
    let read_model = query_api::db::ReadModel::connect(&config).expect("read model");
    let pool = &read_model.pool;
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(pool)
        .await
        .expect("current user");
    assert_eq!(role, "kh63_reader");
    let path: String = sqlx::query_scalar("SELECT current_setting('search_path')")
        .fetch_one(pool)
        .await
        .expect("search path");
    assert_eq!(path, "core, audit");

    let insert = sqlx::query(
        "INSERT INTO units (unit_id, name, kind, registered_at) VALUES ('gia-mao', 'Giả mạo', 'other', now())",
    )
    .execute(pool)
    .await
    .expect_err("no write through the query pool");
    assert!(
        insert.to_string().contains("read-only transaction"),
        "{insert}"
    );
    // Even in a transaction that asks to write, the role may not.
    let mut tx = pool.begin_with("BEGIN READ WRITE").await.expect("begin");
    let denied = sqlx::query("DELETE FROM audit.audit_log")
        .execute(&mut *tx)
        .await
        .expect_err("no delete as the reader role");
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    drop(tx);
    let mut tx = pool.begin_with("BEGIN READ WRITE").await.expect("begin");
    let ddl = sqlx::query("CREATE TABLE core.gia_mao (x int)")
        .execute(&mut *tx)
        .await
        .expect_err("no DDL as the reader role");
    assert!(ddl.to_string().contains("permission denied"), "{ddl}");
    drop(tx);

    let units: i64 =
        sqlx::query_scalar("SELECT count(*) FROM core.units WHERE unit_id = 'gia-mao'")
            .fetch_one(&admin)
            .await
            .expect("count");
    assert_eq!(units, 0);
}
