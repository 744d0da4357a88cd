//! Aggregate loading with a bounded cache of folded state.
//!
//! A cached entry is the aggregate's state as of a stream sequence. That snapshot never becomes
//! wrong, only old: another writer may have appended since. So the target of a command is decided
//! on the cached state straight away and the append's expected sequence catches staleness; a
//! conflict marks the entry stale, and the next load reads only the commits after it.
//!
//! Loading checks every event's link into the aggregate's hash chain. A message on the
//! aggregate's subject that does not link (or is no commit at all) was not written by the command
//! side: the aggregate takes no decision while it stands — unless an auditor set it aside with a
//! quarantine decision that holds, and then it is left out of the state and the chain exactly as
//! the projections leave it out, so the next event links where the read side expects it.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;
use remediation_domain::{AggregateRef, AggregateState, DecodeError, Event};

use crate::chain::{ChainError, verify_link};
use crate::quarantine::{NotSignedOff, StoredMessage};
use crate::{EventStore, StoreError, decode_commit};

/// An aggregate's state, the stream sequence of its last commit (0: none yet) and the hash of
/// its last event (the head of its chain; empty: none yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub state: AggregateState,
    pub version: u64,
    pub head: String,
}

#[derive(Debug, Clone)]
struct Entry {
    loaded: Loaded,
    /// Known to be behind the stream: catch up before trusting it.
    stale: bool,
}

/// Folds aggregates from the store, keeping hot ones in memory.
#[derive(Debug)]
pub struct Repository {
    store: EventStore,
    cache: Mutex<LruCache<AggregateRef, Entry>>,
}

impl Repository {
    pub fn new(store: EventStore, capacity: NonZeroUsize) -> Self {
        Self {
            store,
            cache: Mutex::new(LruCache::new(capacity)),
        }
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    fn cached(&self, target: &AggregateRef) -> Option<Entry> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(target)
            .cloned()
    }

    /// Remembers `loaded` unless the cache already holds a newer version.
    pub fn remember(&self, target: &AggregateRef, loaded: Loaded) {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache
            .peek(target)
            .is_some_and(|e| e.loaded.version > loaded.version)
        {
            return;
        }
        cache.put(
            target.clone(),
            Entry {
                loaded,
                stale: false,
            },
        );
    }

    /// A conflict proved the entry old.
    pub fn mark_stale(&self, target: &AggregateRef) {
        if let Some(entry) = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get_mut(target)
        {
            entry.stale = true;
        }
    }

    /// The state to decide a command on: the cached one if not known to be stale, else caught
    /// up from the store.
    pub async fn load_for_decision(&self, target: &AggregateRef) -> Result<Loaded, StoreError> {
        match self.cached(target) {
            Some(entry) if !entry.stale => Ok(entry.loaded),
            _ => self.load_latest(target).await,
        }
    }

    /// The latest state: whatever is cached, plus every commit after it. Used for the read-only
    /// facts a decision consults, which no expected sequence guards.
    pub async fn load_latest(&self, target: &AggregateRef) -> Result<Loaded, StoreError> {
        let base = self.cached(target).map_or_else(
            || Loaded {
                state: AggregateState::initial(target),
                version: 0,
                head: String::new(),
            },
            |entry| entry.loaded,
        );
        let messages = self.store.messages_after(target, base.version).await?;
        if messages.is_empty() && base.version > 0 {
            self.remember(target, base.clone());
            return Ok(base);
        }
        let mut loaded = base;
        for message in &messages {
            match read(&loaded.head, message) {
                Ok((events, head)) => {
                    for event in &events {
                        loaded.state = loaded.state.evolve(event);
                    }
                    loaded.head = head;
                }
                Err(reason) => match self.store.signed_off(message).await {
                    // Set aside: in no state and no chain, but still the subject's last sequence.
                    Ok(_) => {}
                    Err(NotSignedOff::Store(e)) => return Err(e),
                    Err(refusal) => {
                        return Err(StoreError::Corrupt {
                            sequence: message.sequence,
                            reason: format!("{reason}; {refusal}"),
                        });
                    }
                },
            }
            loaded.version = message.sequence;
        }
        self.remember(target, loaded.clone());
        Ok(loaded)
    }
}

/// Why a stored message on an aggregate's subject does not belong to the aggregate.
#[derive(Debug, thiserror::Error)]
enum Foreign {
    /// No commit at all.
    #[error(transparent)]
    Commit(#[from] StoreError),
    /// A commit that does not link onto the aggregate's chain.
    #[error(transparent)]
    Link(#[from] ChainError),
    /// A commit holding an event this build cannot decode.
    #[error(transparent)]
    Event(#[from] DecodeError),
}

/// The events of `message` and the chain head after them, when they link onto `head`; why the
/// message does not belong to the aggregate otherwise.
fn read(head: &str, message: &StoredMessage) -> Result<(Vec<Event>, String), Foreign> {
    let commit = decode_commit(message.sequence, &message.payload)?;
    let head = verify_link(head, &commit.events)?;
    let events = commit
        .events
        .iter()
        .map(|envelope| envelope.decode())
        .collect::<Result<_, _>>()?;
    Ok((events, head))
}
