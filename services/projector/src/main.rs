//! `projector`: runs the read-model projections, or rebuilds them.

use std::io::Write;
use std::process::ExitCode;

use readmodel::Projection;

fn usage() -> ExitCode {
    eprintln!("usage: projector            run the projections (config from the environment)");
    eprintln!(
        "       projector rebuild [core|audit|all]   rebuild into a fresh schema and swap it in (REBUILD_BATCH_SIZE: commits per batch, default 5000)"
    );
    eprintln!(
        "       projector bench [EVENTS]   catch-up throughput on a scratch stream and schemas (default 1000000; NATS_NKEY_FILE: the operator's seed)"
    );
    eprintln!("{}", time_travel::cli::USAGE);
    ExitCode::FAILURE
}

async fn rebuild(which: &str) -> Result<(), String> {
    let config = projector::Config::from_env()?;
    let batch_size = projector::rebuild::batch_size_from_env()?;
    let projections: Vec<Projection> = match which {
        "all" => Projection::ALL.to_vec(),
        name => vec![Projection::parse(name).ok_or_else(|| format!("no projection {name:?}"))?],
    };
    let projector = projector::Projector::connect(&config).await?;
    // The projections rebuild side by side (each reads the stream and writes its own schema),
    // with one progress line for all of them.
    let lines = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let runs = projections.into_iter().map(|projection| {
        let (lines, projector, config) = (&lines, &projector, &config);
        async move {
            let live = projection.schema(&config.schema_prefix);
            let started = std::time::Instant::now();
            let applied = projector::rebuild::rebuild(
                &projector.context.pool,
                &projector.context.stream,
                projection,
                &live,
                batch_size,
                |p| {
                    let width = 20;
                    let done = (p.applied * width as u64)
                        .checked_div(p.head)
                        .map_or(width, |done| done as usize);
                    let eta = p
                        .eta
                        .map_or_else(|| "–".to_owned(), |eta| format!("{}s", eta.as_secs()));
                    let line = format!(
                        "{:<5} [{}{}] {}/{} commits {:.0}/s ETA {eta}",
                        projection.name(),
                        "#".repeat(done),
                        " ".repeat(width - done),
                        p.applied,
                        p.head,
                        p.events_per_second
                    );
                    if let Ok(mut lines) = lines.lock() {
                        lines.insert(projection.name(), line);
                        let all: Vec<&str> = lines.values().map(String::as_str).collect();
                        eprint!("\r{}   ", all.join("  |  "));
                        let _ = std::io::stderr().flush();
                    }
                },
            )
            .await?;
            eprintln!(
                "\n{}: rebuilt up to stream sequence {applied} in {:.1}s and switched in",
                projection.name(),
                started.elapsed().as_secs_f64()
            );
            Ok::<(), String>(())
        }
    });
    futures::future::try_join_all(runs).await?;
    Ok(())
}

async fn bench(events: &str) -> Result<(), String> {
    let config = projector::Config::from_env()?;
    let events: u64 = events.parse().map_err(|e| format!("EVENTS: {e}"))?;
    let pool = projector::connect_database(&config.database_url).await?;
    // A scratch stream of its own is the operator's to create and delete.
    let (client, js) = service_kit::connect_nats(
        &config.nats_url,
        event_store::access::Service::Admin,
        config.nats_nkey_file.as_deref(),
        "projector-bench",
        std::time::Duration::from_secs(10),
    )
    .await
    .map_err(|e| e.to_string())?;
    projector::bench::run(&pool, &js, events, config.batch_size).await?;
    client.flush().await.map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::init_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => match projector::Config::from_env() {
            Ok(config) => projector::serve(config, service_kit::shutdown_signal()).await,
            Err(e) => Err(e),
        },
        ["bench"] => bench("1000000").await,
        ["bench", events] => bench(events).await,
        ["rebuild"] => rebuild("all").await,
        ["rebuild", which] => rebuild(which).await,
        ["replay", rest @ ..] => time_travel::cli::run(rest).await,
        _ => return usage(),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "projector failed");
            ExitCode::FAILURE
        }
    }
}
