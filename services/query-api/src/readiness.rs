//! Whether the read model can serve correct answers now.
//!
//! It cannot when a projection has stopped on a commit it must not skip — the projector records
//! the stop next to the checkpoint, so this process learns of it from the database — or when a
//! projection lags the stream beyond the bounds: more commits not applied than
//! `max_lag_events`, or the oldest of them waiting longer than `max_lag`. The age of the oldest
//! commit not applied is how long the read model has been missing something; unlike the age of
//! the newest applied event, a quiet stream does not inflate it, nor does a healthy projector
//! that is a moment behind.
//!
//! The lag needs the stream: its last sequence and the stored time of the first commit after
//! each checkpoint, asked of NATS within [`NATS_WAIT`]. Dashboards must not depend on NATS, so
//! without an answer the last head NATS told is used (the stream only grows: the lag it gives
//! is a lower bound) and the answer says that head is not current; before NATS has answered
//! once, the lag is unknown and only stops count.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use crate::db::Stall;
use crate::error::QueryError;
use crate::reads::AuditReads;

/// The most a readiness probe waits for NATS.
pub const NATS_WAIT: Duration = Duration::from_millis(500);

/// How far behind the stream a projection may be and still serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_lag_events: u64,
    pub max_lag: Duration,
}

impl Default for Bounds {
    /// Far behind, not a moment behind: ten thousand commits not applied, or one waiting a
    /// minute (`READY_MAX_LAG_EVENTS`, `READY_MAX_LAG_SECS`).
    fn default() -> Self {
        Self {
            max_lag_events: 10_000,
            max_lag: Duration::from_secs(60),
        }
    }
}

/// The stream's head, as this service last learned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct StreamHead {
    /// The stream's last sequence.
    pub sequence: u64,
    /// When NATS told it.
    pub observed_at: DateTime<Utc>,
    /// False when NATS did not answer this time: `sequence` is the last head it told, and the
    /// lags judged from it are lower bounds.
    pub current: bool,
}

/// How far one projection is behind the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Commits in the stream not applied yet; `None` when the head is unknown.
    pub events: Option<u64>,
    /// How long the oldest of them has been waiting, in seconds (0 when none).
    pub seconds: Option<f64>,
}

/// What NATS told last.
#[derive(Debug, Default)]
struct Seen {
    head: Option<StreamHead>,
    /// Checkpoint → when the first commit after it was stored.
    waiting_since: BTreeMap<u64, DateTime<Utc>>,
}

impl Seen {
    fn lag(&self, checkpoint: u64, now: DateTime<Utc>) -> Lag {
        let Some(head) = self.head else {
            return Lag {
                events: None,
                seconds: None,
            };
        };
        if checkpoint >= head.sequence {
            return Lag {
                events: Some(0),
                seconds: Some(0.0),
            };
        }
        // The commit after the checkpoint was in the stream when the head was seen, at the
        // latest.
        let since = self
            .waiting_since
            .get(&checkpoint)
            .copied()
            .unwrap_or(head.observed_at);
        Lag {
            events: Some(head.sequence - checkpoint),
            seconds: Some((now - since).num_milliseconds().max(0) as f64 / 1000.0),
        }
    }
}

/// The stream as last seen, kept between readiness probes.
#[derive(Debug, Default)]
pub struct StreamWatch {
    seen: Mutex<Seen>,
}

/// The head, and when the first commit after each checkpoint behind it was stored (a commit
/// whose time cannot be read is left out: its wait is then judged from the head's).
async fn ask(
    reads: &AuditReads,
    checkpoints: &[u64],
) -> Result<(u64, BTreeMap<u64, DateTime<Utc>>), QueryError> {
    let stream = reads.stream().await?;
    let head = stream.cached_info().state.last_sequence;
    let mut waiting_since = BTreeMap::new();
    for &checkpoint in checkpoints {
        if checkpoint >= head || waiting_since.contains_key(&checkpoint) {
            continue;
        }
        match stream.get_raw_message(checkpoint + 1).await {
            Ok(message) => {
                let nanos = i64::try_from(message.time.unix_timestamp_nanos()).unwrap_or(0);
                waiting_since.insert(checkpoint, DateTime::from_timestamp_nanos(nanos));
            }
            Err(error) => {
                tracing::warn!(%error, sequence = checkpoint + 1, "cannot read when a commit was stored");
            }
        }
    }
    Ok((head, waiting_since))
}

impl StreamWatch {
    /// The head this judgement uses and the lag of each of `checkpoints`, asking NATS for at
    /// most [`NATS_WAIT`].
    pub async fn lags(
        &self,
        reads: &AuditReads,
        checkpoints: &[u64],
    ) -> (Option<StreamHead>, Vec<Lag>) {
        let asked = match tokio::time::timeout(NATS_WAIT, ask(reads, checkpoints)).await {
            Ok(Ok(answer)) => Some(answer),
            Ok(Err(error)) => {
                tracing::warn!(%error, "readiness: the stream's head is unknown; judging the lag by the last one seen");
                None
            }
            Err(_) => {
                tracing::warn!(
                    "readiness: NATS did not answer in time; judging the lag by the last head seen"
                );
                None
            }
        };
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match asked {
            Some((sequence, waiting_since)) => {
                seen.head = Some(StreamHead {
                    sequence,
                    observed_at: Utc::now(),
                    current: true,
                });
                seen.waiting_since = waiting_since;
            }
            None => {
                if let Some(head) = &mut seen.head {
                    head.current = false;
                }
            }
        }
        let now = Utc::now();
        let lags = checkpoints.iter().map(|c| seen.lag(*c, now)).collect();
        (seen.head, lags)
    }
}

impl Bounds {
    /// Why a projection with this stop and lag cannot serve correct answers now, if it cannot.
    pub fn unready(&self, stall: Option<&Stall>, lag: Lag) -> Option<String> {
        if let Some(stall) = stall {
            let at = stall
                .sequence
                .map_or_else(String::new, |s| format!(" at stream sequence {s}"));
            return Some(format!(
                "stopped{at} since {}: {}",
                stall.since.to_rfc3339(),
                stall.reason
            ));
        }
        if let Some(events) = lag.events
            && events > self.max_lag_events
        {
            return Some(format!(
                "{events} commits behind the stream (at most {} allowed)",
                self.max_lag_events
            ));
        }
        if let Some(seconds) = lag.seconds
            && seconds > self.max_lag.as_secs_f64()
        {
            return Some(format!(
                "the oldest commit not applied has waited {seconds:.1} s (at most {} s allowed)",
                self.max_lag.as_secs_f64()
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000 + seconds, 0).expect("instant")
    }

    fn seen(head: u64, current: bool, waiting: &[(u64, i64)]) -> Seen {
        Seen {
            head: Some(StreamHead {
                sequence: head,
                observed_at: at(100),
                current,
            }),
            waiting_since: waiting.iter().map(|(c, s)| (*c, at(*s))).collect(),
        }
    }

    #[test]
    fn the_lag_is_the_commits_not_applied_and_how_long_the_oldest_has_waited() {
        let seen = seen(50, true, &[(40, 70)]);
        assert_eq!(
            seen.lag(40, at(100)),
            Lag {
                events: Some(10),
                seconds: Some(30.0)
            }
        );
        assert_eq!(
            seen.lag(50, at(100)),
            Lag {
                events: Some(0),
                seconds: Some(0.0)
            }
        );
        // No stored time for the commit after 45: it was there when the head was seen.
        assert_eq!(seen.lag(45, at(130)).seconds, Some(30.0));
        let unknown = Seen::default().lag(45, at(130));
        assert_eq!((unknown.events, unknown.seconds), (None, None));
    }

    #[test]
    fn a_stop_or_a_lag_beyond_either_bound_is_not_ready() {
        let bounds = Bounds {
            max_lag_events: 10,
            max_lag: Duration::from_secs(60),
        };
        let lag = |events, seconds| Lag {
            events: Some(events),
            seconds: Some(seconds),
        };
        assert_eq!(bounds.unready(None, lag(10, 60.0)), None);
        let behind = bounds
            .unready(None, lag(11, 1.0))
            .expect("too many commits");
        assert!(behind.contains("11 commits behind"), "{behind}");
        let waited = bounds.unready(None, lag(1, 60.5)).expect("waited too long");
        assert!(waited.contains("60.5 s"), "{waited}");
        let unknown = Lag {
            events: None,
            seconds: None,
        };
        assert_eq!(bounds.unready(None, unknown), None);
        let stall = Stall {
            sequence: Some(7),
            reason: "unit/so-tai-chinh: hash mismatch".to_owned(),
            since: at(0),
        };
        let stopped = bounds.unready(Some(&stall), unknown).expect("stopped");
        assert!(
            stopped.contains("stream sequence 7") && stopped.contains("hash mismatch"),
            "{stopped}"
        );
    }
}
