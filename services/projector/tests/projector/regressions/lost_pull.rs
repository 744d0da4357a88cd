//! Pull requests NATS leaves unanswered. nats-server 2.9 now and then answers a pull request
//! with nothing at all — no message, no heartbeat, no timeout status — and the consumer stays
//! silent for the next ones (`projector bench`, BATCH_SIZE=2500: one run in a dozen). The
//! stream reader of rebuilds and catch-ups noticed only after two missed 15 s heartbeats (its
//! catch-up took 62 s instead of 4), and the live worker's fetch waited the 5 s async-nats adds
//! to the expiry (read-your-writes staleness of about 5 s). A proxy in front of the real server
//! drops the requests ([`PullDropper`]); the bounds below are guards far above what the fixed
//! code takes (about 4 s and 0.4 s) and below what the old code took.

use std::time::{Duration, Instant};

use event_store::StreamReader;
use event_store::access::Service as Identity;
use test_support::{NatsServer, PullDropper, TestDatabase};

use crate::harness::*;

/// A reader whose first pull request is lost reads the stream's first commit within 20 s
/// (it took a minute).
#[tokio::test]
async fn a_stream_reader_whose_pull_request_is_lost_reads_on() {
    let nats = NatsServer::start();
    let (_admin, _, mut publisher) = stream_with_two_units(&nats).await;
    publisher.flush().await;

    let proxy = PullDropper::start(&nats.url()).await;
    let (_client, proxied) = service_kit::connect_nats(
        &proxy.url(),
        Identity::Projector,
        Some(&nats.nkey_file(Identity::Projector)),
        "lost-pull-test",
        Duration::from_secs(5),
    )
    .await
    .expect("connect through the proxy");
    let stream = proxied.get_stream(STREAM).await.expect("stream");
    proxy.drop_pull_requests(1);

    let started = Instant::now();
    let mut reader = StreamReader::open(&stream, 1).await.expect("open");
    let first = tokio::time::timeout(Duration::from_secs(20), reader.next())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no commit 20 s after the pull request was lost ({} dropped)",
                proxy.dropped()
            )
        })
        .expect("a commit");
    assert_eq!(first.info().expect("info").stream_sequence, 1);
    assert_eq!(
        proxy.dropped(),
        1,
        "the reader's first pull was the one lost"
    );
    eprintln!("read on {:?} after the lost pull", started.elapsed());
}

/// What a run with lost pull requests leaves to look at; the servers live as long as it does.
struct AfterLostPulls {
    /// From storing the commit until both projections applied it.
    took: Duration,
    projector: InProcessProjector,
    _proxy: PullDropper,
    _db: TestDatabase,
    _nats: NatsServer,
}

/// Starts a projector connected through a [`PullDropper`] and lets it catch up; loses its next
/// two pull requests (one of each worker: each pulls every half second while idle, and a worker
/// whose request is lost asks no more until it notices), waits `quiet`, then stores a commit
/// and times until both projections have applied it.
async fn commit_after_lost_pulls(quiet: Duration) -> AfterLostPulls {
    let nats = NatsServer::start();
    let db = TestDatabase::create();
    let proxy = PullDropper::start(&nats.url()).await;
    let mut config = projector_config(&nats, &db.url(), "", 100);
    config.nats_url = proxy.url();
    let CaughtUp {
        mut publisher,
        projector,
        mut conn,
        ..
    } = caught_up_on_two_units(&nats, &config).await;

    proxy.drop_pull_requests(2);
    let deadline = Instant::now() + PATIENCE;
    while proxy.dropped() < 2 {
        assert!(Instant::now() < deadline, "the projector stopped pulling");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(quiet).await;
    let stored_at = Instant::now();
    let sequence = publisher.register("so-cong-thuong", "Sở Công Thương").await;
    publisher.flush().await;
    wait_for_checkpoints(&mut conn, "", sequence).await;
    AfterLostPulls {
        took: stored_at.elapsed(),
        projector,
        _proxy: proxy,
        _db: db,
        _nats: nats,
    }
}

/// With the next pull request of the running projector lost, a commit stored just after is
/// applied by both projections within 1.2 s, and the consumer made anew is counted. It took at
/// least 5.5 s at first (the lost fetch's expiry and async-nats's 5 s on top), then at least
/// 1.5 s (the expiry and the worker's own grace) until a quiet fetch asked the stream whether it
/// was ahead.
#[tokio::test]
async fn the_live_worker_makes_its_consumer_anew_when_a_pull_request_is_lost() {
    let lost = commit_after_lost_pulls(Duration::ZERO).await;
    let (took, projector) = (lost.took, lost.projector);
    eprintln!("applied {took:?} after the lost pull requests");
    assert!(
        took < Duration::from_millis(1_200),
        "the commit after the lost pull requests was applied only after {took:?}"
    );

    let (_, metrics) = get_text(&format!("{}/metrics", projector.url)).await;
    let remade: u64 = ["core", "audit"]
        .into_iter()
        .filter_map(|projection| {
            metric(
                &metrics,
                "kh63_projector_consumers_remade_total",
                projection,
            )?
            .parse::<u64>()
            .ok()
        })
        .sum();
    assert!(remade >= 1, "no consumer counted as made anew:\n{metrics}");
    projector.stop().await;
}

/// A pull request lost in a quiet stretch, when the next commit comes only after the worker's
/// first look at the stream: that commit is applied by both projections within 0.8 s of being
/// stored. The worker looked once, 100 ms into the fetch, found nothing yet, and then waited out
/// the expiry and its grace (1.5 s from the request: about 1.1 s after a commit stored 0.4 s
/// in), which was the staleness tail of the benchmark's rate phases, where commands come in
/// slices with quiet ones between.
#[tokio::test]
async fn a_pull_lost_in_a_quiet_stretch_costs_little_once_commits_come() {
    // Past the first look (100 ms into the fetch), well before the expiry and its grace.
    let lost = commit_after_lost_pulls(Duration::from_millis(400)).await;
    let (took, projector) = (lost.took, lost.projector);
    eprintln!("applied {took:?} after the commit, stored 0.4 s into the lost pulls");
    assert!(
        took < Duration::from_millis(800),
        "the commit stored after the lost pull requests was applied only after {took:?}"
    );
    projector.stop().await;
}
