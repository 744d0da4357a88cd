//! How a folded state is stored in `fold_snapshots.state`: apart from the SQL around it, since the
//! byte layout is what every stored row and every reader has to agree on.

use std::borrow::Cow;
use std::sync::Arc;

use remediation_domain::{AggregateRef, AggregateState};

use crate::Error;
use crate::state::PlanState;

/// Encoding of `fold_snapshots.state`:
/// 1 — the JSON of a [`PlanState`];
/// 2 — the aggregates in frames, each a little-endian `u32` length and the JSON list of its
///     `[reference, state]` pairs, so that a large state decodes on several threads at once;
/// 3 — as 2, but each frame's list is zstd-compressed and the frames hold about equal bytes
///     rather than equal counts of aggregates. An item's assignment history grows with the log
///     (at a million events the fifteen items are three quarters of the state), so frames cut by
///     count put nearly all the work in one of them and the other cores wait; and zstd stores a
///     state in about half of what PostgreSQL's own compression of the JSON takes, and
///     decompresses at over a gigabyte a second.
pub(super) const FORMAT: i32 = 3;

/// Frames of a state: several per core, so that one large aggregate does not leave a core idle.
const CHUNKS: usize = 8;

/// zstd's default level: higher levels shrink snapshots by a few percent at several times the
/// cost of writing them.
const LEVEL: i32 = 3;

/// Encodes `state` in the current [`FORMAT`].
pub(super) fn encode_state(state: &PlanState) -> Result<Vec<u8>, Error> {
    let encoded = |e: std::io::Error| Error::Snapshot(format!("a snapshot does not encode: {e}"));
    let pairs = state
        .aggregates()
        .map(|pair| serde_json::to_vec(&pair))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Snapshot(e.to_string()))?;
    let target = pairs.iter().map(Vec::len).sum::<usize>().div_ceil(CHUNKS);
    let mut bytes = Vec::new();
    let mut frame = Vec::with_capacity(target + 2);
    let mut pairs = pairs.iter().peekable();
    while let Some(pair) = pairs.next() {
        frame.push(if frame.is_empty() { b'[' } else { b',' });
        frame.extend_from_slice(pair);
        if frame.len() >= target || pairs.peek().is_none() {
            frame.push(b']');
            let compressed = zstd::bulk::compress(&frame, LEVEL).map_err(encoded)?;
            let length = u32::try_from(compressed.len())
                .map_err(|_| Error::Snapshot("a snapshot frame exceeds 4 GiB".to_owned()))?;
            bytes.extend_from_slice(&length.to_le_bytes());
            bytes.extend_from_slice(&compressed);
            frame.clear();
        }
    }
    Ok(bytes)
}

/// Where the frames of a format-2 or format-3 state lie: (start, length) of each.
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

type Pairs = Vec<(AggregateRef, AggregateState)>;

/// One frame's pairs: its JSON as stored (format 2) or zstd-compressed (format 3).
fn decode_frame(compressed: bool, frame: &[u8]) -> Result<Pairs, Error> {
    let json = if compressed {
        Cow::Owned(zstd::stream::decode_all(frame).map_err(|e| {
            Error::Snapshot(format!("a stored snapshot frame does not decompress: {e}"))
        })?)
    } else {
        Cow::Borrowed(frame)
    };
    serde_json::from_slice(&json).map_err(invalid)
}

fn invalid(e: serde_json::Error) -> Error {
    Error::Snapshot(format!("stored state does not decode: {e}"))
}

/// Decodes a stored state off the async threads (a large plan is megabytes of JSON), the frames
/// of formats 2 and 3 in parallel.
pub async fn decode_state(format: i32, bytes: Vec<u8>) -> Result<PlanState, Error> {
    let compressed = match format {
        1 => {
            return tokio::task::spawn_blocking(move || {
                serde_json::from_slice::<PlanState>(&bytes)
            })
            .await
            .map_err(|e| Error::Snapshot(e.to_string()))?
            .map_err(invalid);
        }
        2 => false,
        3 => true,
        other => return Err(Error::Snapshot(format!("unknown snapshot format {other}"))),
    };
    let spans = frames(&bytes)?;
    let bytes = Arc::new(bytes);
    let mut handles = Vec::with_capacity(spans.len());
    for (start, length) in spans {
        let bytes = bytes.clone();
        handles.push(tokio::task::spawn_blocking(move || {
            decode_frame(compressed, &bytes[start..start + length])
        }));
    }
    let mut pairs = Vec::new();
    for handle in handles {
        pairs.extend(handle.await.map_err(|e| Error::Snapshot(e.to_string()))??);
    }
    Ok(PlanState::from_pairs(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::history::History;

    fn generated() -> PlanState {
        let mut history = History::new(3, 2_000, chrono::Duration::days(90));
        history.seed_commits();
        while !history.done() {
            history.next_commit();
        }
        // The generator folds with this crate as its own dependency, a build apart from the one
        // under test: the state crosses over as the JSON both builds read and write.
        serde_json::from_value(serde_json::to_value(history.state()).expect("state as JSON"))
            .expect("the same state")
    }

    /// A state as format 2 stored it: uncompressed frames of equal counts of aggregates.
    fn format_2(state: &PlanState) -> Vec<u8> {
        let aggregates: Vec<_> = state.aggregates().collect();
        let mut bytes = Vec::new();
        for chunk in aggregates.chunks(aggregates.len().div_ceil(CHUNKS)) {
            let json = serde_json::to_vec(chunk).expect("chunk");
            bytes.extend_from_slice(&u32::try_from(json.len()).expect("small").to_le_bytes());
            bytes.extend_from_slice(&json);
        }
        bytes
    }

    #[tokio::test]
    async fn stored_states_decode_to_what_was_encoded_in_every_format() {
        let state = generated();
        let stored = encode_state(&state).expect("encode");
        assert_eq!(
            decode_state(FORMAT, stored.clone()).await.expect("v3"),
            state
        );
        assert_eq!(decode_state(2, format_2(&state)).await.expect("v2"), state);
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
        let mut garbled = stored.clone();
        garbled[6] ^= 0xff;
        assert!(decode_state(FORMAT, garbled).await.is_err());
        assert!(decode_state(7, vec![]).await.is_err());
    }

    #[test]
    fn frames_hold_about_equal_bytes_and_are_compressed() {
        let state = generated();
        let stored = encode_state(&state).expect("encode");
        let json = serde_json::to_vec(&state).expect("json");
        let pair_lengths: Vec<usize> = state
            .aggregates()
            .map(|pair| serde_json::to_vec(&pair).expect("pair").len())
            .collect();
        let largest_pair = pair_lengths.iter().copied().max().expect("aggregates");
        let share = pair_lengths.iter().sum::<usize>().div_ceil(CHUNKS);
        let spans = frames(&stored).expect("frames");
        assert!(
            (2..=CHUNKS).contains(&spans.len()),
            "{} frames",
            spans.len()
        );
        for (start, length) in spans {
            let frame = zstd::stream::decode_all(&stored[start..start + length]).expect("zstd");
            // A frame closes at the first aggregate that takes it past its share, so none holds
            // more than its share and one aggregate (and the list's brackets and commas).
            assert!(
                frame.len() <= share + largest_pair + pair_lengths.len() + 2,
                "a frame of {} bytes against a share of {share}",
                frame.len()
            );
        }
        assert!(
            stored.len() * 4 < json.len(),
            "{} bytes stored for {} bytes of JSON",
            stored.len(),
            json.len()
        );
    }
}
