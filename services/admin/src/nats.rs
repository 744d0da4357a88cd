//! How the admin CLI reaches NATS, and `remediation-admin nats-credentials`, which makes the
//! keys every service logs in with.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream;
use event_store::access::{Layout, Service};
use event_store::credentials::{self, CredentialsError};
use service_kit::config::{ConfigError, stream_settings};

/// The server and the operator's key (every subcommand that talks to NATS).
#[derive(Debug, clap::Args)]
pub struct NatsArgs {
    /// NATS server.
    #[arg(
        long,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    pub nats_url: String,
    /// The operator's nkey seed (`admin.nk` from `nats-credentials`); without it the CLI
    /// connects anonymously, which only a server without authentication accepts.
    #[arg(long, env = "NATS_NKEY_FILE", global = true)]
    pub nats_nkey_file: Option<PathBuf>,
}

impl NatsArgs {
    pub async fn connect(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<(async_nats::Client, jetstream::Context), service_kit::NatsError> {
        service_kit::connect_nats(
            &self.nats_url,
            Service::Admin,
            self.nats_nkey_file.as_deref(),
            name,
            timeout,
        )
        .await
    }
}

/// Where to write the keys, and the names the permissions are derived from.
#[derive(Debug, clap::Args)]
pub struct CredentialsArgs {
    /// Directory for `<service>.nk` (one seed per service, mode 0600) and `auth.conf`.
    #[arg(long)]
    dir: PathBuf,
    /// The projector's SCHEMA_PREFIX: it names the projector's durable consumers.
    #[arg(long, env = "SCHEMA_PREFIX", default_value = "")]
    schema_prefix: String,
    /// The NATS account of the deployment (repeat for several deployments on one server, each
    /// in an account of its own: they see nothing of each other; their seeds then go to
    /// `DIR/<account>/`, every account into the one `auth.conf`).
    #[arg(long = "account", default_value = event_store::access::DEFAULT_ACCOUNT)]
    accounts: Vec<String>,
}

/// Why `nats-credentials` wrote nothing (or not everything).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("--account {0:?}: letters, digits, '_' and '-' only")]
    Account(String),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

/// Writes a seed for every service that has none yet and the `auth.conf` that grants each its
/// rights (the stream from STREAM_NAME). Existing seeds are kept, so running it again changes
/// nothing; to rotate a key, delete its seed, run this again and restart nats-server and the
/// service.
pub fn write_credentials(args: &CredentialsArgs) -> Result<(), WriteError> {
    let settings = stream_settings()?;
    let mut layouts = Vec::new();
    for account in &args.accounts {
        if account.is_empty()
            || !account
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(WriteError::Account(account.clone()));
        }
        layouts.push(Layout::new(&settings, &args.schema_prefix).in_account(account));
    }
    let conf = match layouts.as_slice() {
        [layout] => {
            let conf = credentials::ensure(&args.dir, layout)?;
            for service in Service::ALL {
                let seed = credentials::nkey_file(&args.dir, service);
                println!("{:<12} {}", service.name(), seed.display());
            }
            conf
        }
        _ => {
            let conf = credentials::ensure_deployments(&args.dir, &layouts)?;
            for layout in &layouts {
                for service in Service::ALL {
                    let seed = credentials::nkey_file(&args.dir.join(layout.account()), service);
                    println!(
                        "{:<12} {:<12} {}",
                        layout.account(),
                        service.name(),
                        seed.display()
                    );
                }
            }
            conf
        }
    };
    println!("nats-server: include {}", conf.display());
    Ok(())
}
