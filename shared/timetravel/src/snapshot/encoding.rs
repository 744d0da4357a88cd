//! How a folded state is stored in `fold_snapshots.state`: apart from the SQL around it, since the
//! byte layout is what every stored row and every reader has to agree on.

use std::sync::Arc;

use remediation_domain::{AggregateRef, AggregateState};

use crate::Error;
use crate::state::PlanState;

/// Encoding of `fold_snapshots.state`:
/// 1 — the JSON of a [`PlanState`];
/// 2 — the aggregates in [`CHUNKS`] frames, each a little-endian `u32` length and the JSON list of
///     its `[reference, state]` pairs, so that a large state decodes on several threads at once.
pub(super) const FORMAT: i32 = 2;

/// Frames of a format-2 state.
const CHUNKS: usize = 8;

/// Encodes `state` in the current [`FORMAT`].
pub(super) fn encode_state(state: &PlanState) -> Result<Vec<u8>, Error> {
    let aggregates: Vec<_> = state.aggregates().collect();
    let per_chunk = aggregates.len().div_ceil(CHUNKS).max(1);
    let mut bytes = Vec::new();
    for chunk in aggregates.chunks(per_chunk) {
        let json = serde_json::to_vec(chunk).map_err(|e| Error::Snapshot(e.to_string()))?;
        let length = u32::try_from(json.len())
            .map_err(|_| Error::Snapshot("a snapshot chunk exceeds 4 GiB".to_owned()))?;
        bytes.extend_from_slice(&length.to_le_bytes());
        bytes.extend_from_slice(&json);
    }
    Ok(bytes)
}

/// Where the frames of a format-2 state lie: (start, length) of each.
fn frames(bytes: &[u8]) -> Result<Vec<(usize, usize)>, Error> {
    let truncated = || Error::Snapshot("truncated snapshot frame".to_owned());
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let header: [u8; 4] = bytes
            .get(at..at + 4)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(truncated)?;
        let length = u32::from_le_bytes(header) as usize;
        let start = at + 4;
        if bytes.len() < start + length {
            return Err(truncated());
        }
        frames.push((start, length));
        at = start + length;
    }
    Ok(frames)
}

/// Decodes a stored state off the async threads (a large plan is megabytes of JSON), the frames
/// of format 2 in parallel.
pub async fn decode_state(format: i32, bytes: Vec<u8>) -> Result<PlanState, Error> {
    let invalid =
        |e: serde_json::Error| Error::Snapshot(format!("stored state does not decode: {e}"));
    match format {
        1 => tokio::task::spawn_blocking(move || serde_json::from_slice::<PlanState>(&bytes))
            .await
            .map_err(|e| Error::Snapshot(e.to_string()))?
            .map_err(invalid),
        2 => {
            let spans = frames(&bytes)?;
            let bytes = Arc::new(bytes);
            let mut handles = Vec::with_capacity(spans.len());
            for (start, length) in spans {
                let bytes = bytes.clone();
                handles.push(tokio::task::spawn_blocking(move || {
                    serde_json::from_slice::<Vec<(AggregateRef, AggregateState)>>(
                        &bytes[start..start + length],
                    )
                }));
            }
            let mut pairs = Vec::new();
            for handle in handles {
                pairs.extend(
                    handle
                        .await
                        .map_err(|e| Error::Snapshot(e.to_string()))?
                        .map_err(invalid)?,
                );
            }
            Ok(PlanState::from_pairs(pairs))
        }
        other => Err(Error::Snapshot(format!("unknown snapshot format {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::history::History;

    #[tokio::test]
    async fn stored_states_decode_to_what_was_encoded() {
        let mut history = History::new(3, 2_000, chrono::Duration::days(90));
        history.seed_commits();
        while !history.done() {
            history.next_commit();
        }
        // The generator folds with this crate as its own dependency, a build apart from the one
        // under test: the state crosses over as the JSON both builds read and write.
        let state: PlanState =
            serde_json::from_value(serde_json::to_value(history.state()).expect("state as JSON"))
                .expect("the same state");
        let stored = encode_state(&state).expect("encode");
        assert_eq!(frames(&stored).expect("frames").len(), CHUNKS);
        assert_eq!(
            decode_state(FORMAT, stored.clone()).await.expect("v2"),
            state
        );
        let v1 = serde_json::to_vec(&state).expect("v1");
        assert_eq!(decode_state(1, v1).await.expect("v1"), state);
        assert_eq!(
            decode_state(FORMAT, encode_state(&PlanState::default()).expect("empty"))
                .await
                .expect("empty"),
            PlanState::default()
        );
        assert!(
            decode_state(FORMAT, stored[..stored.len() - 1].to_vec())
                .await
                .is_err()
        );
        assert!(decode_state(7, vec![]).await.is_err());
    }
}
