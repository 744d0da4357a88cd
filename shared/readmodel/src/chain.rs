//! Refusing events that do not link into their aggregate's hash chain.

use std::collections::HashMap;

use event_store::HashedCommit;
use sqlx::PgConnection;

use crate::ApplyError;
use crate::copy::CopyIn;

/// The chain heads of a schema that one writer fills alone (a rebuild's fresh schema), held in
/// memory from batch to batch instead of read and rewritten by each: the heads change with every
/// event, and that upsert was a tenth of a rebuild's time. [`HeldHeads::store`] writes them once,
/// before anything applies to the schema with stored heads.
///
/// A piece of work that fails is rolled back in the database; what it changed here is undone
/// with it ([`HeldHeads::mark`], [`HeldHeads::undo_to`]), so a batch retried a commit at a time
/// checks against the heads as the database holds them.
#[derive(Debug, Default)]
pub struct HeldHeads {
    heads: HashMap<String, String>,
    /// Each head changed since [`HeldHeads::settle`], with its value before, oldest first.
    undo: Vec<(String, Option<String>)>,
}

/// A point to undo [`HeldHeads`] to.
#[derive(Debug, Clone, Copy)]
pub struct HeadsMark(usize);

impl HeldHeads {
    /// Where the heads stand now.
    pub fn mark(&self) -> HeadsMark {
        HeadsMark(self.undo.len())
    }

    /// Undoes every change since `mark`.
    pub fn undo_to(&mut self, mark: HeadsMark) {
        for (aggregate, before) in self.undo.drain(mark.0..).rev() {
            match before {
                Some(head) => self.heads.insert(aggregate, head),
                None => self.heads.remove(&aggregate),
            };
        }
    }

    /// Keeps every change so far for good: the transaction that made them committed.
    pub fn settle(&mut self) {
        self.undo.clear();
    }

    fn advance(&mut self, aggregate: String, head: String) {
        let before = self.heads.insert(aggregate.clone(), head);
        self.undo.push((aggregate, before));
    }

    /// Writes the heads, with one binary `COPY`, into the `chain_heads` table of `schema`, which
    /// must hold none yet.
    pub async fn store(&self, conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
        let statement = format!(
            "COPY {}.chain_heads (aggregate, head) FROM STDIN (FORMAT binary)",
            crate::quoted(schema)
        );
        let mut copy = CopyIn::new(conn, &statement, 2);
        for (aggregate, head) in &self.heads {
            copy.row(|rows| {
                rows.field(&aggregate.as_str())?;
                rows.field(&head.as_str())
            })
            .await?;
        }
        copy.finish().await
    }
}

/// The chain heads the one live writer of a schema read or wrote last, kept from batch to batch
/// so that a batch reads from the `chain_heads` table only the aggregates it has not seen: that
/// read was as costly as the upsert that follows it. The table stays the record (every batch
/// still writes its heads there); what is kept is good only while the schema stands exactly where
/// this writer's last commit left it — the same `checkpoints` table (a rebuild's switch puts
/// another in its place) at the same checkpoint (anything else that moved it, or a database that
/// went back to an earlier state, would leave other heads behind). Otherwise it is dropped.
#[derive(Debug, Default)]
pub struct HeadCache {
    heads: HashMap<String, String>,
    /// Where the kept heads are good: the `checkpoints` table's oid and the checkpoint.
    good_at: Option<(i64, u64)>,
    /// The table a batch now in flight locked; `None` outside a batch.
    entered: Option<i64>,
}

impl HeadCache {
    /// Beyond this many aggregates the heads are dropped and read again as batches need them:
    /// a few megabytes at most.
    const MAX_KEPT: usize = 50_000;

    /// A batch locked `table` at `checkpoint`: the kept heads stay only if that is where the last
    /// commit left them. Until [`HeadCache::committed`], they are good nowhere, so a batch that
    /// fails or rolls back leaves them to be dropped by the next.
    pub fn enter(&mut self, table: i64, checkpoint: u64) {
        if self.good_at.take() != Some((table, checkpoint)) {
            self.heads.clear();
        }
        self.entered = Some(table);
    }

    /// The batch entered last committed, leaving its table at `checkpoint`.
    pub fn committed(&mut self, checkpoint: u64) {
        if self.heads.len() > Self::MAX_KEPT {
            self.heads.clear();
        }
        self.good_at = self.entered.take().map(|table| (table, checkpoint));
    }
}

/// Where a batch's chain heads are checked and moved forward.
#[derive(Debug)]
pub enum Heads<'a> {
    /// The schema's `chain_heads` table.
    Stored,
    /// The table, read only for the aggregates `HeadCache` does not hold.
    Cached(&'a mut HeadCache),
    /// Memory only: a schema filled by one writer alone (see [`HeldHeads`]).
    Held(&'a mut HeldHeads),
}

/// Checks every event of `commits` against the chain heads this projection holds (see
/// [`Heads`]), and moves the heads forward. Each event's hash was computed over its
/// content once, when the commit was decoded for every projection ([`HashedCommit`]); here the
/// links are checked, and a mismatch found then is reported where [`event_store::verify_link`]
/// would report it. A break stops the projection at the commit that carries it. An aggregate
/// without a head starts its chain empty — unless the projection held events before it tracked
/// chains (`chain_tracking.since` > 0) and the event says it continues one: that first link is
/// taken as given (the event's own hash is still checked), and every later one is checked.
pub async fn check_and_advance(
    conn: &mut PgConnection,
    commits: &[&HashedCommit],
    heads: Heads<'_>,
) -> Result<(), ApplyError> {
    let key = |e: &event_store::CloudEvent| format!("{}/{}", e.aggregatetype, e.aggregateid);
    let mut aggregates: Vec<String> = commits
        .iter()
        .flat_map(|c| c.events.iter().map(key))
        .collect();
    aggregates.sort();
    aggregates.dedup();
    let kept = match &heads {
        Heads::Stored => None,
        Heads::Cached(cache) => Some(&cache.heads),
        Heads::Held(held) => Some(&held.heads),
    };
    let mut current: HashMap<String, String> = kept.map_or_else(HashMap::new, |kept| {
        aggregates
            .iter()
            .filter_map(|a| kept.get(a).map(|head| (a.clone(), head.clone())))
            .collect()
    });
    // A held schema has no heads but those held; elsewhere the table has the rest.
    if !matches!(heads, Heads::Held(_)) {
        let unknown: Vec<&str> = aggregates
            .iter()
            .filter(|a| !current.contains_key(*a))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            let stored = sqlx::query_as::<_, (String, String)>(
                "SELECT aggregate, head FROM chain_heads WHERE aggregate = ANY($1)",
            )
            .bind(unknown)
            // Planned afresh each time: a generic plan cached while the table was small keeps
            // scanning it whole once it has grown (seen: 1 s per batch at 50 000 chains).
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
            current.extend(stored);
        }
    }
    let mut tracked_before_events: Option<bool> = None;
    for commit in commits {
        for (index, event) in commit.events.iter().enumerate() {
            let aggregate = key(event);
            let previous = match current.get(&aggregate) {
                Some(head) => head.as_str(),
                None if !event.prevhash.is_empty() => {
                    let trusted = match tracked_before_events {
                        Some(trusted) => trusted,
                        None => {
                            let since: i64 = sqlx::query_scalar("SELECT since FROM chain_tracking")
                                .fetch_one(&mut *conn)
                                .await?;
                            *tracked_before_events.insert(since > 0)
                        }
                    };
                    if trusted { event.prevhash.as_str() } else { "" }
                }
                None => "",
            };
            commit
                .link(index, previous)
                .map_err(|e| ApplyError::Forged {
                    sequence: commit.sequence,
                    aggregate: aggregate.clone(),
                    reason: e.to_string(),
                })?;
            current.insert(aggregate, event.hash.clone());
        }
    }
    let cache = match heads {
        Heads::Held(held) => {
            for (aggregate, head) in current {
                held.advance(aggregate, head);
            }
            return Ok(());
        }
        Heads::Cached(cache) => Some(cache),
        Heads::Stored => None,
    };
    // Upserted in key order, as `aggregates` is sorted.
    let (names, values): (Vec<String>, Vec<String>) = aggregates
        .into_iter()
        .filter_map(|a| current.remove(&a).map(|h| (a, h)))
        .unzip();
    sqlx::query(
        "INSERT INTO chain_heads (aggregate, head) SELECT * FROM UNNEST($1::text[], $2::text[])
         ON CONFLICT (aggregate) DO UPDATE SET head = EXCLUDED.head",
    )
    .bind(&names)
    .bind(&values)
    .execute(conn)
    .await?;
    if let Some(cache) = cache {
        cache.heads.extend(names.into_iter().zip(values));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads(held: &HeldHeads) -> Vec<(&str, &str)> {
        let mut heads: Vec<_> = held
            .heads
            .iter()
            .map(|(a, h)| (a.as_str(), h.as_str()))
            .collect();
        heads.sort();
        heads
    }

    /// Kept heads are good only where this writer's last commit left the schema: the same
    /// table at the same checkpoint. Anything else — another checkpoint (a writer beside it, a
    /// database gone back), another table (a rebuild's switch), a batch that never committed —
    /// drops them.
    #[test]
    fn kept_heads_are_dropped_unless_the_schema_stands_where_the_last_commit_left_it() {
        let kept = |cache: &HeadCache| cache.heads.len();
        let mut cache = HeadCache::default();
        let fill = |cache: &mut HeadCache| {
            cache.heads.insert("item/1".into(), "h1".into());
        };
        cache.enter(7, 10);
        fill(&mut cache);
        cache.committed(12);
        cache.enter(7, 12);
        assert_eq!(kept(&cache), 1, "where the last commit left it");
        cache.committed(12);
        cache.enter(7, 11);
        assert_eq!(kept(&cache), 0, "another checkpoint");
        fill(&mut cache);
        cache.committed(13);
        cache.enter(8, 13);
        assert_eq!(kept(&cache), 0, "another table");
        fill(&mut cache);
        // Entered, never committed: good nowhere, even at the checkpoint it started from.
        cache.enter(8, 13);
        assert_eq!(kept(&cache), 0, "a batch that did not commit");
    }

    /// A piece that fails is undone to where it started, heads it added and heads it moved
    /// alike, and what was settled before stays.
    #[test]
    fn undoing_to_a_mark_restores_the_heads_as_they_were_there() {
        let mut held = HeldHeads::default();
        held.advance("unit/so-y-te".into(), "a1".into());
        held.settle();
        let mark = held.mark();
        held.advance("unit/so-y-te".into(), "a2".into());
        held.advance("unit/so-moi".into(), "b1".into());
        held.advance("unit/so-y-te".into(), "a3".into());
        assert_eq!(
            heads(&held),
            [("unit/so-moi", "b1"), ("unit/so-y-te", "a3")]
        );
        held.undo_to(mark);
        assert_eq!(heads(&held), [("unit/so-y-te", "a1")]);
        // Settled changes are kept for good: nothing before the mark is undone.
        held.advance("unit/so-moi".into(), "b1".into());
        held.settle();
        held.undo_to(HeadsMark(0));
        assert_eq!(
            heads(&held),
            [("unit/so-moi", "b1"), ("unit/so-y-te", "a1")]
        );
    }
}
