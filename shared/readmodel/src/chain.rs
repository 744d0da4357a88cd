//! Refusing events that do not link into their aggregate's hash chain.

use std::collections::HashMap;

use event_store::{Commit, verify_link};
use sqlx::PgConnection;

use crate::ApplyError;

/// Checks every event of `commits` against the chain heads this projection holds, and moves the
/// heads forward. A break stops the projection at the commit that carries it.
pub async fn check_and_advance(
    conn: &mut PgConnection,
    commits: &[Commit],
) -> Result<(), ApplyError> {
    let key = |e: &event_store::CloudEvent| format!("{}/{}", e.aggregatetype, e.aggregateid);
    let mut aggregates: Vec<String> = commits
        .iter()
        .flat_map(|c| c.events.iter().map(key))
        .collect();
    aggregates.sort();
    aggregates.dedup();
    let mut heads: HashMap<String, String> = sqlx::query_as::<_, (String, String)>(
        "SELECT aggregate, head FROM chain_heads WHERE aggregate = ANY($1)",
    )
    .bind(&aggregates)
    // Planned afresh each time: a generic plan cached while the table was small keeps scanning
    // it whole once it has grown (seen: 1 s per batch at 50 000 chains).
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    for commit in commits {
        for event in &commit.events {
            let aggregate = key(event);
            let previous = heads.get(&aggregate).map_or("", String::as_str);
            let head = verify_link(previous, std::slice::from_ref(event)).map_err(|e| {
                ApplyError::Forged {
                    sequence: commit.sequence,
                    aggregate: aggregate.clone(),
                    reason: e.to_string(),
                }
            })?;
            heads.insert(aggregate, head);
        }
    }
    let (names, values): (Vec<String>, Vec<String>) = aggregates
        .into_iter()
        .filter_map(|a| heads.remove(&a).map(|h| (a, h)))
        .unzip();
    sqlx::query(
        "INSERT INTO chain_heads (aggregate, head) SELECT * FROM UNNEST($1::text[], $2::text[])
         ON CONFLICT (aggregate) DO UPDATE SET head = EXCLUDED.head",
    )
    .bind(names)
    .bind(values)
    .execute(conn)
    .await?;
    Ok(())
}
