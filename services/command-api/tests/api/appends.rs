//! Appends made at the same moment: how they reach NATS, and that each still lands once.

use chrono::Utc;
use event_store::{CloudEvent, CommandMeta, StoreError, StreamSettings, provision, seal};
use remediation_domain::text::{Name, UnitId};
use remediation_domain::unit::{UnitEvent, UnitKind};
use remediation_domain::{Actor, AggregateRef, Event, Role};
use test_support::NatsServer;

use super::{jetstream_of, open_store};

/// A unit's registration, sealed as the first commit of its chain.
fn registration(n: usize) -> (AggregateRef, Vec<CloudEvent>) {
    let target = AggregateRef::Unit(UnitId::new(format!("don-vi-{n}")).expect("unit id"));
    let event = Event::Unit(UnitEvent::Registered {
        name: Name::new(&format!("Đơn vị số {n}")).expect("name"),
        kind: UnitKind::Department,
    });
    let command_id = uuid::Uuid::now_v7();
    let meta = CommandMeta {
        command_id,
        command_name: "register-unit",
        actor: Actor {
            user: "tests".to_owned(),
            unit: None,
            role: Role::ProvinceOffice,
        },
        correlation_id: "appends".to_owned(),
        causation_id: command_id.to_string(),
        recorded_at: Utc::now(),
        effective_at: Utc::now(),
    };
    let mut envelopes = vec![CloudEvent::new(&target, &event, &meta)];
    seal("", &mut envelopes);
    (target, envelopes)
}

/// Tasks that append at once hand their publishes to the store's publisher, which puts them on
/// the connection together (one write instead of one each: the command side's load showed the
/// difference). On a one-thread runtime every task has handed its publish over before the
/// publisher first runs. Each append still lands once, at a sequence of its own, holding its own
/// events, and the expected-sequence guard still holds for appends made through it.
#[tokio::test]
async fn appends_made_at_once_go_out_together_and_each_lands_once() {
    const APPENDS: usize = 32;
    let nats = NatsServer::start();
    let settings = StreamSettings::default();
    provision(&jetstream_of(&nats).await, &settings)
        .await
        .expect("stream provisioned");
    let store = open_store(&nats, &settings).await;
    let commits: Vec<_> = (0..APPENDS).map(registration).collect();

    let tasks: Vec<_> = commits
        .iter()
        .cloned()
        .map(|(target, envelopes)| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = envelopes[0].id.to_string();
                store.append(&target, 0, &id, &envelopes).await
            })
        })
        .collect();
    let mut sequences = Vec::new();
    for task in tasks {
        let appended = task.await.expect("task").expect("appended");
        assert!(!appended.duplicate);
        sequences.push(appended.sequence);
    }
    let bursts = store.publish_bursts();
    assert!(
        bursts <= 2,
        "{APPENDS} appends made at once went out in {bursts} bursts"
    );
    let mut distinct = sequences.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), APPENDS, "sequences: {sequences:?}");
    for ((target, envelopes), sequence) in commits.iter().zip(&sequences) {
        let stored = store.commits_after(target, 0).await.expect("read back");
        assert_eq!(stored.len(), 1, "{target:?}");
        assert_eq!(stored[0].sequence, *sequence);
        assert_eq!(&stored[0].events, envelopes);
    }

    // The guard travels with the publish: a second first commit of unit 0 is refused.
    let (target, envelopes) = registration(0);
    let again = store
        .append(&target, 0, &envelopes[0].id.to_string(), &envelopes)
        .await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
}
