//! `remediation-admin`: operate the event store — provision the stream, load the Plan 63 seed
//! through the command handler, issue bearer tokens, and measure throughput.

mod bench;
mod export;
mod keepalive;
mod nats;
mod quarantine;
mod seed;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use event_store::StoreError;
use remediation_domain::principal::PrincipalError;
use remediation_domain::text::{TextError, UnitId};
use remediation_domain::{Principal, Role};
use service_kit::auth::{TokenError, TokenKeys, WeakSecret};
use service_kit::config::{ConfigError, stream_settings, token_secret};
use service_kit::{ErrorChain, NatsError};

#[derive(Debug, Parser)]
#[command(name = "remediation-admin", about = "Operate the Plan 63 event store")]
struct Cli {
    #[command(flatten)]
    nats: nats::NatsArgs,
    #[command(subcommand)]
    command: Action,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    ProvinceOffice,
    DepartmentOfFinance,
    UnitStaff,
    Auditor,
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::ProvinceOffice => Role::ProvinceOffice,
            RoleArg::DepartmentOfFinance => Role::DepartmentOfFinance,
            RoleArg::UnitStaff => Role::UnitStaff,
            RoleArg::Auditor => Role::Auditor,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Create the stream and idempotency bucket, or align their settings (STREAM_REPLICAS,
    /// DUPLICATE_WINDOW_SECS). Safe to repeat.
    Provision,
    /// Load a plan seed through the command handler; a second run appends nothing.
    Seed {
        #[arg(long, default_value = "deploy/seed/ke-hoach-63.json")]
        file: std::path::PathBuf,
    },
    /// Print a signed bearer token (key from TOKEN_SECRET or TOKEN_SECRET_FILE).
    Token {
        /// A role the user holds; repeat it (or list them: --roles a,b) for several, the
        /// primary one first.
        #[arg(
            long = "role",
            visible_alias = "roles",
            value_name = "ROLE",
            value_enum,
            value_delimiter = ',',
            required = true
        )]
        roles: Vec<RoleArg>,
        /// The user's unit; required for unit staff.
        #[arg(long)]
        unit: Option<String>,
        #[arg(long, default_value = "demo")]
        user: String,
        #[arg(long, default_value_t = 24 * 30)]
        ttl_hours: i64,
    },
    /// Check every hash chain in the stream (and the audit table): OK with counts and the breaks
    /// signed off by quarantine decisions, or the first broken link with its stream sequence and
    /// aggregate.
    Verify(verify::VerifyArgs),
    /// Set aside one stored message that breaks the record (an auditor's decision, recorded as an
    /// event), so that the projections stopped at it continue.
    Quarantine(quarantine::QuarantineArgs),
    /// Stream events or an analytics view for a time range as NDJSON or CSV (UTF-8 with BOM).
    Export(export::ExportArgs),
    /// Write the Department of Finance's quarterly compilation (XLSX or CSV).
    Compile(export::CompileArgs),
    /// Write the event feed's JSON Schemas and catalog (generated from the Rust types).
    Schemas {
        #[arg(long, default_value = "docs/events")]
        out: std::path::PathBuf,
    },
    /// Measure commands/s through HTTP against the raw JetStream publish rate of the same payloads.
    Bench(bench::BenchArgs),
    /// Write an nkey seed per service (kept if present) and the nats-server `auth.conf` that
    /// grants each service its permissions.
    NatsCredentials(nats::CredentialsArgs),
}

/// Why a subcommand failed: each subcommand's own error, or the few steps done here.
#[derive(Debug, thiserror::Error)]
enum AdminError {
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Flush(#[from] async_nats::client::FlushError),
    #[error(transparent)]
    WeakSecret(#[from] WeakSecret),
    #[error(transparent)]
    Unit(#[from] TextError),
    #[error(transparent)]
    Principal(#[from] PrincipalError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Seed(#[from] seed::SeedError),
    #[error(transparent)]
    Bench(#[from] bench::BenchError),
    #[error(transparent)]
    Verify(#[from] verify::VerifyError),
    #[error(transparent)]
    Credentials(#[from] nats::WriteError),
    #[error(transparent)]
    Quarantine(#[from] quarantine::SetAsideError),
    #[error(transparent)]
    Export(#[from] export::RunError),
    #[error("{}: {source}", path.display())]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

async fn run(cli: Cli) -> Result<(), AdminError> {
    match cli.command {
        Action::Provision => {
            let (client, js) = cli
                .nats
                .connect("remediation-admin", std::time::Duration::from_secs(5))
                .await?;
            let settings = stream_settings()?;
            let outcome = event_store::provision(&js, &settings).await?;
            println!("stream {}: {outcome:?}", settings.name);
            client.flush().await?;
        }
        Action::Seed { file } => seed::load(&cli.nats, &file).await?,
        Action::Token {
            roles,
            unit,
            user,
            ttl_hours,
        } => {
            let keys = TokenKeys::new(&token_secret()?)?;
            let unit = unit.map(UnitId::new).transpose()?;
            let principal = Principal::new(user, unit, roles.into_iter().map(Role::from))?;
            let token = keys.issue_for(&principal, chrono::Duration::hours(ttl_hours))?;
            println!("{token}");
        }
        Action::Bench(args) => bench::run(&cli.nats, args).await?,
        Action::Verify(args) => verify::run(&cli.nats, args).await?,
        Action::NatsCredentials(args) => nats::write_credentials(&args)?,
        Action::Quarantine(args) => quarantine::run(&cli.nats, args).await?,
        Action::Schemas { out } => write_schemas(&out)?,
        Action::Export(args) => export::run_export(args).await?,
        Action::Compile(args) => export::run_compile(args).await?,
    }
    Ok(())
}

fn write_schemas(out: &std::path::Path) -> Result<(), AdminError> {
    let written = |path: &std::path::Path| {
        let path = path.to_owned();
        move |source| AdminError::Write { path, source }
    };
    let schemas = event_store::schemas::catalog();
    let dir = out.join("schemas");
    std::fs::create_dir_all(&dir).map_err(written(&dir))?;
    for schema in &schemas {
        let path = dir.join(schema.file_name());
        let text = serde_json::to_string_pretty(&schema.schema)? + "\n";
        std::fs::write(&path, text).map_err(written(&path))?;
    }
    let index = out.join("README.md");
    std::fs::write(&index, event_store::schemas::catalog_markdown(&schemas))
        .map_err(written(&index))?;
    println!(
        "{} event schemas written to {}",
        schemas.len(),
        dir.display()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::init_tracing();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", ErrorChain(&e));
            ExitCode::FAILURE
        }
    }
}
