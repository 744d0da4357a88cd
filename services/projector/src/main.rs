//! `projector`: runs the read-model projections, or rebuilds them.

use std::error::Error;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use readmodel::Projection;

mod replay;

/// jemalloc, not glibc's malloc: decoding, hashing and folding a batch allocate and free many small
/// strings, and glibc spent about a third of the rebuild's projector time in `malloc`, `free` and
/// `malloc_consolidate`. With jemalloc a rebuild is about a quarter faster, the live start no
/// slower, and the resident peak within a few MB of glibc's (mimalloc doubled it; README,
/// Performance).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Runs the read-model projections (configuration from the environment: NATS_URL,
/// DATABASE_URL, …; see the README), or one of the commands below.
#[derive(Debug, Parser)]
#[command(name = "projector", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rebuild into a fresh schema and swap it in, with no downtime (REBUILD_BATCH_SIZE:
    /// commits per batch, default 5000).
    Rebuild {
        #[arg(value_enum, default_value_t = Which::All)]
        which: Which,
    },
    /// Catch-up throughput on a scratch stream and scratch schemas, next to the raw COPY rate
    /// of the same rows (NATS_NKEY_FILE: the operator's seed).
    Bench {
        /// Commits to generate.
        #[arg(default_value_t = 1_000_000)]
        events: u64,
        /// Time `rebuild all` over the scratch stream instead of the catch-up (both projections
        /// at once, REBUILD_BATCH_SIZE commits per batch, secondary indexes built after the load).
        #[arg(long)]
        rebuild: bool,
        /// How many times both projections catch up at once, each followed by the COPY limit:
        /// the round with the median ratio is reported (one round is a few seconds, and on a
        /// shared machine its ratio moved by a fifth from run to run).
        #[arg(long, default_value = "3")]
        rounds: std::num::NonZeroU16,
    },
    /// The plan as of any instant, a diff between two instants, or the stored snapshots
    /// brought up to date (DATABASE_URL, SCHEMA_PREFIX).
    Replay(replay::ReplayArgs),
}

/// Which projections to rebuild.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Which {
    Core,
    Audit,
    All,
}

impl Which {
    fn projections(self) -> Vec<Projection> {
        match self {
            Which::Core => vec![Projection::Core],
            Which::Audit => vec![Projection::Audit],
            Which::All => Projection::ALL.to_vec(),
        }
    }
}

async fn rebuild(which: Which) -> Result<(), Box<dyn Error>> {
    let config = projector::Config::from_env()?;
    let batch_size = projector::rebuild::batch_size_from_env()?;
    let projector = projector::Projector::connect(&config).await?;
    // The projections rebuild side by side (the stream read once for them all, each writing its
    // own schema), a progress bar each.
    let bars = MultiProgress::new();
    let style =
        ProgressStyle::with_template("{prefix:5} [{bar:30}] {pos}/{len} commits  {msg}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#>-");
    let projections = which.projections();
    let progress: Vec<(Projection, ProgressBar)> = projections
        .iter()
        .map(|&projection| {
            let bar = bars.add(ProgressBar::new(0).with_style(style.clone()));
            bar.set_prefix(projection.name());
            (projection, bar)
        })
        .collect();
    let rebuilt = projector::rebuild::rebuild_all(
        &projector.context.pool,
        &projector.context.stream,
        &projections,
        &config.schema_prefix,
        batch_size,
        |projection, p| {
            if let Some((_, bar)) = progress.iter().find(|(which, _)| *which == projection) {
                bar.set_length(p.head);
                bar.set_position(p.applied);
                bar.set_message(format!("{:.0} events/s", p.events_per_second));
            }
        },
    )
    .await?;
    progress.iter().for_each(|(_, bar)| bar.finish());
    // Printed also where the bars are not drawn (stderr not a terminal): deploy/bench.sh reads
    // these lines.
    for (projection, applied, took) in rebuilt.projections {
        eprintln!(
            "{}: rebuilt up to stream sequence {applied} in {:.1}s and switched in",
            projection.name(),
            took.as_secs_f64()
        );
    }
    Ok(())
}

async fn bench(
    events: u64,
    rebuild: bool,
    rounds: std::num::NonZeroU16,
) -> Result<(), Box<dyn Error>> {
    let config = projector::Config::from_env()?;
    if readmodel::create_database_if_missing(&config.database_url).await? {
        eprintln!("created the database {}", config.database_url);
    }
    let pool = projector::connect_database(&config.database_url).await?;
    // A scratch stream of its own is the operator's to create and delete.
    let (client, js) = service_kit::connect_nats(
        &config.nats_url,
        event_store::access::Service::Admin,
        config.nats_nkey_file.as_deref(),
        "projector-bench",
        std::time::Duration::from_secs(10),
    )
    .await?;
    let mode = if rebuild {
        projector::bench::Mode::Rebuild {
            batch_size: projector::rebuild::batch_size_from_env()?,
        }
    } else {
        projector::bench::Mode::CatchUp {
            batch_size: config.batch_size,
            rounds,
        }
    };
    projector::bench::run(&pool, &js, events, mode).await?;
    client.flush().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    service_kit::init_tracing();
    let outcome: Result<(), Box<dyn Error>> = match cli.command {
        None => match projector::Config::from_env() {
            Ok(config) => projector::serve(config, service_kit::shutdown_signal())
                .await
                .map_err(Into::into),
            Err(e) => Err(e.into()),
        },
        Some(Command::Bench {
            events,
            rebuild,
            rounds,
        }) => bench(events, rebuild, rounds).await,
        Some(Command::Rebuild { which }) => rebuild(which).await,
        Some(Command::Replay(args)) => replay::run(args).await.map_err(Into::into),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %service_kit::ErrorChain(&*e), "projector failed");
            ExitCode::FAILURE
        }
    }
}
