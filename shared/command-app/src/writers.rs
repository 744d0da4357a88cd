//! One decision at a time per aggregate within this process.
//!
//! Without it, commands racing on one aggregate all decide on the same cached state, all but one
//! lose the expected-sequence race, and each loser reloads the aggregate from the stream and
//! decides again: on a hot item most of the work is thrown away, and under load the retries make
//! answers slower, which makes more commands overlap, which makes more retries. Taking turns, the
//! next command decides on the state the previous one left in the cache, with no extra read.
//!
//! This is an optimisation, not the guard: every append still carries the expected sequence, so
//! other instances, and anything else appending to the stream, are caught as before.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, MutexGuard};

use remediation_domain::AggregateRef;
use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard};

/// The aggregates some command is deciding on or waiting for; an entry lives only while one is.
#[derive(Debug, Default)]
pub(crate) struct Writers {
    gates: Mutex<HashMap<AggregateRef, Arc<TurnLock<()>>>>,
}

/// A command's hold on one aggregate (its turn): others wait until it is dropped. Not the
/// Idempotency-Key claim's `Turn`, which decides who decides for one key.
#[derive(Debug)]
pub(crate) struct WriterLock<'a> {
    writers: &'a Writers,
    target: AggregateRef,
    gate: Arc<TurnLock<()>>,
    held: Option<OwnedMutexGuard<()>>,
}

impl Writers {
    fn gates(&self) -> MutexGuard<'_, HashMap<AggregateRef, Arc<TurnLock<()>>>> {
        // Nothing panics while holding it; a poisoned map is still a consistent one.
        self.gates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until no other command of this process decides on `target`, first come first
    /// served (tokio's mutex is fair).
    pub(crate) async fn lock(&self, target: &AggregateRef) -> WriterLock<'_> {
        let gate = self.gates().entry(target.clone()).or_default().clone();
        // Made before waiting, so that a command dropped while it waits still tidies up.
        let mut lock = WriterLock {
            writers: self,
            target: target.clone(),
            gate,
            held: None,
        };
        lock.held = Some(lock.gate.clone().lock_owned().await);
        lock
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.gates().len()
    }
}

impl Drop for WriterLock<'_> {
    fn drop(&mut self) {
        let mut gates = self.writers.gates();
        self.held = None;
        // Every handle to a gate is cloned under the map's lock, so with that lock held the
        // count is exact: the map's and this lock's are the last two when nobody else waits.
        if let Entry::Occupied(entry) = gates.entry(self.target.clone())
            && Arc::ptr_eq(entry.get(), &self.gate)
            && Arc::strong_count(&self.gate) == 2
        {
            entry.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use remediation_domain::text::ItemId;

    use super::*;

    fn item(id: &str) -> AggregateRef {
        AggregateRef::Item(ItemId::new(id).expect("item id"))
    }

    #[tokio::test]
    async fn turns_on_one_aggregate_follow_each_other_and_others_do_not_wait() {
        let writers = Writers::default();
        let hot = item("kh-63-2025-01");
        let first = writers.lock(&hot).await;
        // Another aggregate goes ahead at once.
        let other =
            tokio::time::timeout(Duration::from_secs(5), writers.lock(&item("kh-63-2025-02")))
                .await
                .expect("a turn on another aggregate does not wait");
        drop(other);
        // The same aggregate waits for the first turn to end.
        let mut second = Box::pin(writers.lock(&hot));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut second)
                .await
                .is_err(),
            "a second turn on the same aggregate waits"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the second turn follows the first");
        assert_eq!(writers.tracked(), 1);
        drop(second);
        assert_eq!(writers.tracked(), 0, "no entry outlives its turns");
    }

    #[tokio::test]
    async fn a_command_dropped_while_waiting_leaves_nothing_behind() {
        let writers = Writers::default();
        let first = writers.lock(&item("kh-63-2025-01")).await;
        let waiting = tokio::time::timeout(
            Duration::from_millis(20),
            writers.lock(&item("kh-63-2025-01")),
        )
        .await;
        assert!(waiting.is_err(), "it waited, then was dropped");
        drop(first);
        assert_eq!(writers.tracked(), 0);
    }
}
