//! Both projections of a running projector apply every commit, and each commit is decoded and
//! its events hashed once: the second projection takes what the first decoded.

use test_support::{NatsServer, TestDatabase};

use crate::harness::*;

fn counter(metrics: &str, name: &str) -> Option<u64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_commit_is_decoded_and_hashed_once_for_both_projections() {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let service = CommandService::start(&nats).await;
    service.load_seed().await;
    let (_client, js) = jetstream(&nats).await;
    let head = stream_head(&js).await;
    // Batches of 100 keep 400 commits for the projection behind: the whole seed, so however far
    // one projection runs ahead, the other finds every commit kept.
    assert!(head < 400, "the seed makes {head} commits");

    let projector = InProcessProjector::start(&projector_config(&nats, &db.url(), "", 100)).await;
    let mut conn = connect(&db.url()).await;
    wait_for_checkpoints(&mut conn, "", head).await;
    let metrics = get_text(&format!("{}/metrics", projector.url)).await.1;
    assert_eq!(
        counter(&metrics, "kh63_projector_commits_decoded_total"),
        Some(head),
        "{metrics}"
    );
    assert_eq!(
        counter(&metrics, "kh63_projector_commits_decoded_shared_total"),
        Some(head),
        "{metrics}"
    );
    projector.stop().await;
    service.shutdown().await;
}
