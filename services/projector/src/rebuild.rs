//! Rebuilding a projection from the stream into a fresh schema while the live one keeps serving,
//! then switching atomically.
//!
//! The switch holds the projection's advisory lock, which the live worker takes for every batch:
//! inside it the rebuilt schema is caught up to at least the live checkpoint and renamed into
//! place. The live worker then finds the rebuilt checkpoint and skips what the rebuild applied.
//! A message an auditor set aside with a quarantine decision is passed as quarantined here too,
//! so the rebuilt schema comes out as the live one did.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::stream;
use event_store::{StoreError, StreamReader};
use readmodel::{
    Durability, HeldHeads, Projection, create_indexes, drop_schema, drop_secondary_indexes,
    grant_reader, prepare_schema, quoted, swap_schema,
};
use sqlx::{AssertSqlSafe, PgPool};
use tokio::sync::mpsc;

use crate::batch::{BatchError, Delivered, Target, apply_releasing};
use crate::decode::Decoder;

/// Commits per batch when rebuilding, unless `REBUILD_BATCH_SIZE` says otherwise: larger than
/// the live worker's, since nobody waits on a rebuild's individual commits.
pub const DEFAULT_BATCH_SIZE: usize = 5_000;

/// The rebuild's batch size: `REBUILD_BATCH_SIZE`, else [`DEFAULT_BATCH_SIZE`].
pub fn batch_size_from_env() -> Result<usize, crate::StartError> {
    crate::at_least_one("REBUILD_BATCH_SIZE", DEFAULT_BATCH_SIZE)
}

/// Why a rebuild stopped; the live schema is then untouched.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Stream(#[from] StoreError),
    #[error(transparent)]
    StreamInfo(#[from] stream::InfoError),
    /// A delivered message without JetStream metadata.
    #[error("{0}")]
    Message(#[source] async_nats::Error),
    #[error(transparent)]
    Apply(#[from] BatchError),
    /// The stream's reader ended before the head without an error of its own: the rebuild was
    /// being torn down.
    #[error("the rebuild's reading of the stream stopped before its head")]
    ReadingStopped,
    /// A batch's task ended without an answer (it panicked).
    #[error("a rebuild's batch ended without an answer: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// How far a rebuild has got.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub applied: u64,
    pub head: u64,
    pub events_per_second: f64,
    pub eta: Option<Duration>,
}

/// Reads the whole stream in order, a batch at a time (also what `projector bench` catches up
/// with).
pub(crate) struct Reader {
    messages: StreamReader,
    batch_size: usize,
}

impl Reader {
    /// From the stream's commit `from` on (1: the first), `batch_size` commits a batch.
    pub(crate) async fn open(
        stream: &stream::Stream,
        from: u64,
        batch_size: usize,
    ) -> Result<Self, RebuildError> {
        Ok(Self {
            messages: StreamReader::open(stream, from).await?,
            batch_size,
        })
    }

    /// The next commits after `after`, up to `until` (inclusive) and at most a batch.
    pub(crate) async fn next_batch(
        &mut self,
        after: u64,
        until: u64,
    ) -> Result<Vec<Delivered>, RebuildError> {
        let mut batch = Vec::with_capacity(self.batch_size);
        let mut last = after;
        while last < until && batch.len() < self.batch_size {
            let message = self.messages.next().await?;
            last = message
                .info()
                .map_err(RebuildError::Message)?
                .stream_sequence;
            batch.push(Delivered {
                sequence: last,
                payload: message.payload.clone(),
            });
        }
        Ok(batch)
    }
}

/// Gathers planner statistics for every table of `schema`. A freshly filled schema has none until
/// autovacuum gets to it, and the queries right after the switch would be planned as if its
/// tables were empty, where the schema they replace had statistics.
async fn analyze(pool: &PgPool, schema: &str) -> Result<(), sqlx::Error> {
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1")
            .bind(schema)
            .fetch_all(pool)
            .await?;
    for table in tables {
        sqlx::query(AssertSqlSafe(format!(
            "ANALYZE {}.{}",
            quoted(schema),
            quoted(&table)
        )))
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// One batch of the stream, read once and handed to every projection being rebuilt.
type Batch = Arc<[Delivered]>;

/// Applies one batch of a rebuild's load to the fresh schema `schema` in a transaction of its
/// own, with the chain heads in `heads`; returns the checkpoint it reached and the heads.
async fn load(
    pool: PgPool,
    decoder: Arc<Decoder>,
    stream: stream::Stream,
    schema: String,
    projection: Projection,
    batch: Batch,
    mut heads: HeldHeads,
) -> Result<(u64, HeldHeads), RebuildError> {
    let mut tx = pool.begin().await?;
    let target = Target {
        decoder: &decoder,
        schema: &schema,
        projection,
        // Nobody reads the fresh schema before the switch, and the switch commits durably, which
        // makes every commit before it durable too. After a crash the rebuild starts again from
        // a fresh schema anyway.
        durability: Durability::Unflushed,
    };
    let applied = apply_releasing(&mut tx, target, &stream, &batch, Some(&mut heads)).await?;
    tx.commit().await?;
    heads.settle();
    Ok((applied.checkpoint, heads))
}

/// Stores the chain heads a rebuild's load held into the fresh schema `schema`.
async fn store_heads(pool: &PgPool, schema: &str, heads: &HeldHeads) -> Result<(), sqlx::Error> {
    heads.store(&mut *pool.acquire().await?, schema).await
}

/// Rebuilds `projection` (live schema `live`) and swaps it in; returns the rebuilt checkpoint.
/// `report` is called after every batch.
pub async fn rebuild(
    pool: &PgPool,
    stream: &stream::Stream,
    projection: Projection,
    live: &str,
    batch_size: usize,
    report: impl FnMut(Progress) + Send,
) -> Result<u64, RebuildError> {
    let report = Mutex::new(report);
    let rebuilt = side_by_side(pool, stream, &[(projection, live)], batch_size, &|_, p| {
        (report.lock().unwrap_or_else(PoisonError::into_inner))(p)
    })
    .await?;
    Ok(rebuilt
        .projections
        .first()
        .map_or(0, |&(_, checkpoint, _)| checkpoint))
}

/// What [`rebuild_all`] did.
#[derive(Debug)]
pub struct Rebuilt {
    /// Each projection in the order asked, with the checkpoint it was rebuilt to and the time it
    /// took.
    pub projections: Vec<(Projection, u64, Duration)>,
    /// How many commits were decoded and hashed, for all the projections together.
    pub decoded: u64,
}

/// Rebuilds each of `projections` (live schema `<prefix><name>`) as [`rebuild`] does, side by
/// side. The first failure ends the others (their live schemas untouched). `report` hears every
/// batch of every projection.
pub async fn rebuild_all(
    pool: &PgPool,
    stream: &stream::Stream,
    projections: &[Projection],
    prefix: &str,
    batch_size: usize,
    report: impl Fn(Projection, Progress) + Sync,
) -> Result<Rebuilt, RebuildError> {
    let lives: Vec<String> = projections.iter().map(|p| p.schema(prefix)).collect();
    let runs: Vec<(Projection, &str)> = projections
        .iter()
        .copied()
        .zip(lives.iter().map(String::as_str))
        .collect();
    side_by_side(pool, stream, &runs, batch_size, &report).await
}

/// Rebuilds each `(projection, live schema)` of `runs` into a fresh schema and swaps it in.
///
/// The stream up to its head is read once and each batch goes to every projection, through a
/// channel of one batch each: a projection that gets ahead waits for the slowest, so they stay
/// within a few batches of each other and the shared decoder, which keeps that many, decodes
/// each commit once. Read apart, they drifted further than it kept, and decoding twice took a
/// tenth of the machine (README, "Rebuild"). A projection rebuilt alone keeps nothing decoded.
async fn side_by_side(
    pool: &PgPool,
    stream: &stream::Stream,
    runs: &[(Projection, &str)],
    batch_size: usize,
    report: &(impl Fn(Projection, Progress) + Sync),
) -> Result<Rebuilt, RebuildError> {
    let kept = if runs.len() > 1 {
        crate::DECODED_KEPT_BATCHES * batch_size
    } else {
        0
    };
    let decoder = &Arc::new(Decoder::new(kept));
    let (decoded, _) = decoder.counters();
    let head = stream.get_info().await?.state.last_sequence;
    let (senders, receivers): (Vec<_>, Vec<_>) =
        runs.iter().map(|_| mpsc::channel::<Batch>(1)).unzip();
    let loads = runs
        .iter()
        .zip(receivers)
        .map(|(&(projection, live), batches)| async move {
            let started = Instant::now();
            let rebuilt = format!("{live}_rebuild");
            let deferred = prepare(pool, projection, &rebuilt).await?;
            let (applied, heads) = load_all(
                pool,
                decoder,
                stream,
                (projection, &rebuilt),
                head,
                batches,
                |p| report(projection, p),
            )
            .await?;
            let loaded = started.elapsed();
            store_heads(pool, &rebuilt, &heads).await?;
            create_indexes(pool, &deferred).await?;
            let indexed = started.elapsed();
            analyze(pool, &rebuilt).await?;
            // Where a rebuild's time went: the load, then the indexes and statistics.
            tracing::info!(
                projection = projection.name(),
                loaded = ?loaded,
                indexed = ?indexed,
                analyzed = ?started.elapsed(),
                "rebuilt schema loaded, indexed and analyzed; switching"
            );
            let applied = switch(
                pool,
                decoder,
                stream,
                projection,
                (live, &rebuilt),
                applied,
                batch_size,
            )
            .await?;
            Ok::<_, RebuildError>((projection, applied, started.elapsed()))
        });
    let ((), projections) = tokio::try_join!(
        read_for_all(stream, head, batch_size, senders),
        futures::future::try_join_all(loads)
    )?;
    Ok(Rebuilt {
        projections,
        decoded: decoded.get(),
    })
}

/// A fresh, empty schema `rebuilt` for `projection`, readable by the query service, without its
/// secondary indexes; returns their definitions, to create once the load is done.
async fn prepare(
    pool: &PgPool,
    projection: Projection,
    rebuilt: &str,
) -> Result<Vec<String>, RebuildError> {
    drop_schema(&mut *pool.acquire().await?, rebuilt).await?;
    prepare_schema(pool, projection, rebuilt).await?;
    grant_reader(pool, rebuilt).await?;
    Ok(drop_secondary_indexes(pool, rebuilt).await?)
}

/// Reads the stream up to `head` and sends each batch to every one of `senders`, in order.
async fn read_for_all(
    stream: &stream::Stream,
    head: u64,
    batch_size: usize,
    senders: Vec<mpsc::Sender<Batch>>,
) -> Result<(), RebuildError> {
    let mut reader = Reader::open(stream, 1, batch_size).await?;
    let mut read = 0;
    while read < head {
        let batch: Batch = reader.next_batch(read, head).await?.into();
        read = batch.last().map_or(head, |message| message.sequence);
        for sender in &senders {
            // A closed channel is a load that stopped with an error of its own, which is what
            // the rebuild answers with.
            if sender.send(Arc::clone(&batch)).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Applies the batches from `batches`, up to `head`, to the fresh schema of `target`
/// (projection, schema); returns the checkpoint reached and the chain heads held.
async fn load_all(
    pool: &PgPool,
    decoder: &Arc<Decoder>,
    stream: &stream::Stream,
    (projection, schema): (Projection, &str),
    head: u64,
    mut batches: mpsc::Receiver<Batch>,
    mut report: impl FnMut(Progress),
) -> Result<(u64, HeldHeads), RebuildError> {
    let started = Instant::now();
    let mut applied = 0u64;
    let mut read = 0u64;
    // Nobody else writes the fresh schema, so its chain heads stay in memory until the load
    // is done, and go with each batch to its task and back.
    let mut heads = HeldHeads::default();
    // One batch is applied on a task of its own, decoding and writing on a core of their own,
    // while the reader fills this projection's channel with the next. Only then is the next
    // taken: it is waiting in the channel already, and taking it earlier would hold a fourth
    // batch (the reader's, the channel's, this one, the one being written) for nothing, since
    // a batch needs the chain heads the one before it leaves. Batches commit one after the
    // other, in stream order (dropping the set aborts the one in flight).
    let mut loading = tokio::task::JoinSet::new();
    while applied < head {
        if let Some(loaded) = loading.join_next().await {
            (applied, heads) = loaded.map_err(RebuildError::Task)??;
        }
        if read < head {
            let batch = batches.recv().await.ok_or(RebuildError::ReadingStopped)?;
            read = batch.last().map_or(head, |message| message.sequence);
            loading.spawn(load(
                pool.clone(),
                Arc::clone(decoder),
                stream.clone(),
                schema.to_owned(),
                projection,
                batch,
                std::mem::take(&mut heads),
            ));
        }
        let rate = applied as f64 / started.elapsed().as_secs_f64().max(1e-3);
        report(Progress {
            applied,
            head,
            events_per_second: rate,
            eta: (rate > 0.0)
                .then(|| Duration::from_secs_f64(head.saturating_sub(applied) as f64 / rate)),
        });
    }
    Ok((applied, heads))
}

/// The switch, exclusive against the live worker's batches: whatever the live projection
/// applied since the load's head (`applied`) is applied to the schema `rebuilt` too, then it
/// trades names with `live`. Returns the rebuilt checkpoint.
async fn switch(
    pool: &PgPool,
    decoder: &Decoder,
    stream: &stream::Stream,
    projection: Projection,
    (live, rebuilt): (&str, &str),
    mut applied: u64,
    batch_size: usize,
) -> Result<u64, RebuildError> {
    let retired = format!("{live}_retired");
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(readmodel::lock_key(live))
        .execute(&mut *tx)
        .await?;
    let live_checkpoint: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT last_sequence FROM {}.checkpoints WHERE projection = $1",
        quoted(live)
    )))
    .bind(projection.name())
    .fetch_optional(&mut *tx)
    .await?;
    let target = live_checkpoint.unwrap_or(0) as u64;
    if applied < target {
        let mut reader = Reader::open(stream, applied + 1, batch_size).await?;
        while applied < target {
            let batch = reader.next_batch(applied, target).await?;
            let target = Target {
                decoder,
                schema: rebuilt,
                projection,
                durability: Durability::Configured,
            };
            applied = apply_releasing(&mut tx, target, stream, &batch, None)
                .await?
                .checkpoint;
        }
    }
    swap_schema(&mut tx, live, rebuilt, &retired).await?;
    tx.commit().await?;
    // Waits for queries still reading the old tables, then frees them.
    drop_schema(&mut *pool.acquire().await?, &retired).await?;
    Ok(applied)
}
