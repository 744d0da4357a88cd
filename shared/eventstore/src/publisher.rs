//! Appends handed to the NATS connection in bursts.
//!
//! Each command's task used to put its publish on the connection's queue itself. The connection's
//! task, woken by it, went to that worker's LIFO slot and so ran right after, before the next
//! command's task: under load nearly every publish went out in a write of its own and nats-server
//! read them one at a time (measured at 14 000 commands/s: 112 000 `writev` calls in command-api
//! per 70 000 commands, 40 000 of them publishes). Here one task takes every publish waiting for
//! it and queues them together, after letting the tasks that are ready at that moment add theirs,
//! so the connection writes them in one go. No timer is involved: a lone publish waits only for
//! what its worker had to run anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_nats::jetstream::context::{PublishAckFuture, PublishError};
use async_nats::jetstream::{self, message::PublishMessage};
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;
use crate::store::classify_publish_error;

/// Publishes queued on the connection in one burst at most. The connection's own queue holds
/// 2 048 (async-nats' default `client_capacity`), so a burst never waits on it for long.
const BURST: usize = 256;

/// Publishes waiting for the task. The command side holds fewer in flight (`MAX_IN_FLIGHT`).
const WAITING: usize = 1_024;

/// One append: what to publish, and where its acknowledgement's future goes.
struct Handed {
    subject: String,
    message: PublishMessage,
    queued: oneshot::Sender<Result<PublishAckFuture, PublishError>>,
}

/// The handle the event store appends through; the task ends with the last handle.
#[derive(Debug, Clone)]
pub(crate) struct Publisher {
    waiting: mpsc::Sender<Handed>,
    bursts: Arc<AtomicU64>,
}

impl Publisher {
    /// Starts the task on the current runtime.
    pub(crate) fn start(js: jetstream::Context) -> Self {
        let (waiting, receiver) = mpsc::channel(WAITING);
        let bursts = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(js, receiver, bursts.clone()));
        Self { waiting, bursts }
    }

    /// How many bursts the task has queued so far: fewer than the publishes when they went out
    /// together.
    pub(crate) fn bursts(&self) -> u64 {
        self.bursts.load(Ordering::Relaxed)
    }

    /// Queues `message` on the connection; the returned future resolves to the stream's
    /// acknowledgement as [`jetstream::Context::send_publish`]'s does.
    pub(crate) async fn publish(
        &self,
        subject: String,
        message: PublishMessage,
    ) -> Result<PublishAckFuture, StoreError> {
        let (queued, answer) = oneshot::channel();
        self.waiting
            .send(Handed {
                subject,
                message,
                queued,
            })
            .await
            .map_err(stopped)?;
        answer
            .await
            .map_err(stopped)?
            .map_err(classify_publish_error)
    }
}

/// The task is gone while a handle is left: only a runtime shutting down does that.
fn stopped<E>(_: E) -> StoreError {
    StoreError::unavailable("the publisher's task has stopped")
}

async fn run(js: jetstream::Context, mut waiting: mpsc::Receiver<Handed>, bursts: Arc<AtomicU64>) {
    let mut burst = Vec::with_capacity(BURST);
    while waiting.recv_many(&mut burst, BURST).await > 0 {
        // Back of the line: the tasks this worker has ready now (those that the same poll of the
        // sockets woke) hand over their publishes first.
        tokio::task::yield_now().await;
        while burst.len() < BURST
            && let Ok(handed) = waiting.try_recv()
        {
            burst.push(handed);
        }
        bursts.fetch_add(1, Ordering::Relaxed);
        for Handed {
            subject,
            message,
            queued,
        } in burst.drain(..)
        {
            // The caller may have gone; its publish still goes out, as it would have had it
            // queued the publish itself before going.
            let _ = queued.send(js.send_publish(subject, message).await);
        }
    }
}
