//! Private servers for tests, in the manner of nats.rs's own harness: each test starts its own
//! `nats-server -js` on a port the OS picks and a temporary store, and the server dies with the
//! value that owns it. Tests therefore run in parallel and repeatedly without sharing state.
//!
//! The server runs with the product's own NATS accounts and permissions (generated as
//! `remediation-admin nats-credentials` does), so every test connects as the service it plays.

use std::ffi::OsStr;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use std::{env, fs, thread};

use event_store::StreamSettings;
use event_store::access::{Layout, Service};
use event_store::credentials;

mod binary;
mod cluster;
pub mod history;
mod postgres;
mod proxy;
mod service;
mod tables;
pub use binary::workspace_binary;
pub use cluster::NatsCluster;
pub use postgres::PostgresServer;
pub use proxy::PullDropper;
pub use service::{NotStarted, ServiceBinary, ServiceProcess};
pub use tables::{
    GROUP_MEMBER_BY_RANK, all_checksums, checkpoint, checksums, wait_for_checkpoints,
};

/// A nats-server with JetStream, owned by a test.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

/// Sends SIG`name` (e.g. `STOP`) to process `pid`.
pub(crate) fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Seeds and `auth.conf` for the default stream layout under `dir/credentials` — in the default
/// account, or with `accounts`, in each of them (seeds under `dir/credentials/<account>`) — and
/// the server configuration `dir/nats.conf` that includes them.
fn write_config(dir: &Path, accounts: &[&str]) {
    write_credentials(dir, accounts);
    fs::write(
        dir.join("nats.conf"),
        format!("include \"credentials/{}\"\n", credentials::AUTH_CONF),
    )
    .expect("write the nats-server configuration");
}

/// The seeds and `auth.conf` of [`write_config`], without a server configuration.
fn write_credentials(dir: &Path, accounts: &[&str]) {
    let layout = Layout::new(&StreamSettings::default(), "");
    let credentials_dir = dir.join("credentials");
    if accounts.is_empty() {
        credentials::ensure(&credentials_dir, &layout)
    } else {
        let layouts: Vec<Layout> = accounts
            .iter()
            .map(|account| layout.clone().in_account(account))
            .collect();
        credentials::ensure_deployments(&credentials_dir, &layouts)
    }
    .expect("write the NATS credentials");
}

/// `NATS_SERVER_BIN`, else `nats-server` from the PATH, else Debian's location.
pub(crate) fn nats_server_binary() -> PathBuf {
    if let Some(bin) = env::var_os("NATS_SERVER_BIN") {
        return bin.into();
    }
    env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

fn unique_dir(prefix: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

fn spawn(dir: &Path, port: Option<u16>) -> Child {
    let store = dir.join("store");
    spawn_node(
        &nats_server_binary(),
        dir,
        "nats",
        port,
        &["-js".as_ref(), "-sd".as_ref(), store.as_os_str()],
    )
}

/// Starts nats-server with `dir/<name>.conf` on `port` (the OS picks when `None`), its ports
/// file in `dir` and its log in `dir/<name>.log`; `extra` are further arguments.
fn spawn_node(binary: &Path, dir: &Path, name: &str, port: Option<u16>, extra: &[&OsStr]) -> Child {
    let port_arg = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
    Command::new(binary)
        .arg("-c")
        .arg(dir.join(format!("{name}.conf")))
        .args(["-a", "127.0.0.1", "-p", &port_arg])
        .args(extra)
        .arg("--ports_file_dir")
        .arg(dir)
        .arg("-l")
        .arg(dir.join(format!("{name}.log")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "start {} (install Debian's nats-server or set NATS_SERVER_BIN): {e}",
                binary.display()
            )
        })
}

/// A port nobody listens on now. Another process may take it before the server binds it; the
/// window is a few milliseconds, and only servers that cannot pick their own port need it (a
/// cluster's first route port, a private PostgreSQL).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

/// Waits for `<dir>/nats-server_<pid>.ports` and reads the client port from it.
fn read_port(dir: &Path, pid: u32) -> u16 {
    read_ports(dir, pid).client
}

/// The ports a nats-server listens on, from its ports file.
struct Ports {
    client: u16,
    /// Its route port, when it runs in a cluster.
    cluster: Option<u16>,
    /// Its HTTP monitoring port, when it serves one (`-m`).
    monitoring: Option<u16>,
}

/// Waits for `<dir>/nats-server_<pid>.ports` and reads the ports from it.
fn read_ports(dir: &Path, pid: u32) -> Ports {
    let deadline = Instant::now() + Duration::from_secs(20);
    let port_of = |url: &serde_json::Value| {
        url.as_str()
            .and_then(|url| url.rsplit(':').next())
            .and_then(|port| port.parse().ok())
    };
    loop {
        let ports_file = fs::read_dir(dir)
            .expect("read the server directory")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(&format!("_{pid}.ports")));
        if let Some(path) = ports_file
            && let Ok(text) = fs::read_to_string(&path)
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(client) = port_of(&json["nats"][0])
        {
            return Ports {
                client,
                cluster: port_of(&json["cluster"][0]),
                monitoring: port_of(&json["monitoring"][0]),
            };
        }
        assert!(
            Instant::now() < deadline,
            "nats-server wrote no ports file in {dir:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn wait_until_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nats-server did not listen on {port}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

impl NatsServer {
    /// Starts a fresh server with an empty store; clients must log in with a service's key
    /// ([`NatsServer::nkey_file`]).
    pub fn start() -> Self {
        Self::start_with_accounts(&[])
    }

    /// A fresh server on which every account of `accounts` holds a deployment of its own, as
    /// `remediation-admin nats-credentials --account A --account B` makes them; clients log in
    /// with [`NatsServer::account_nkey_file`].
    pub fn start_with_accounts(accounts: &[&str]) -> Self {
        let dir = unique_dir("nats-test");
        write_config(&dir, accounts);
        Self::launch(dir)
    }

    /// A fresh server (new keys, the same accounts) whose JetStream store starts as a copy of
    /// `store`: a file-level backup restored into an empty server.
    pub fn start_with_store(store: &Path) -> Self {
        let dir = unique_dir("nats-test");
        write_config(&dir, &[]);
        let copied = Command::new("cp")
            .arg("-a")
            .arg(store)
            .arg(dir.join("store"))
            .status()
            .expect("cp");
        assert!(copied.success(), "copy {store:?}");
        Self::launch(dir)
    }

    /// Starts the server configured in `dir` on a port the OS picks.
    fn launch(dir: PathBuf) -> Self {
        let child = spawn(&dir, None);
        let port = read_port(&dir, child.id());
        wait_until_listening(port);
        Self {
            child: Some(child),
            port,
            dir,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The JetStream store directory (`-sd`): what a file-level backup copies, server stopped.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// The seed file `service` logs in with (`NATS_NKEY_FILE`).
    pub fn nkey_file(&self, service: Service) -> PathBuf {
        credentials::nkey_file(&self.dir.join("credentials"), service)
    }

    /// The seed file `service` of `account`'s deployment logs in with (a server started with
    /// [`NatsServer::start_with_accounts`]).
    pub fn account_nkey_file(&self, account: &str, service: Service) -> PathBuf {
        credentials::nkey_file(&self.dir.join("credentials").join(account), service)
    }

    /// A client logged in as `service`, its replies under the service's inbox prefix.
    pub async fn connect(&self, service: Service) -> async_nats::Client {
        self.login(service, self.nkey_file(service)).await
    }

    /// A client logged in as `service` of `account`'s deployment.
    pub async fn connect_to_account(&self, account: &str, service: Service) -> async_nats::Client {
        self.login(service, self.account_nkey_file(account, service))
            .await
    }

    async fn login(&self, service: Service, nkey_file: PathBuf) -> async_nats::Client {
        credentials::login(async_nats::ConnectOptions::new(), service, Some(&nkey_file))
            .expect("the test server's seed")
            .connect(self.url())
            .await
            .unwrap_or_else(|e| panic!("connect to NATS as {}: {e}", service.name()))
    }

    /// Kills the server (as a crash would); the store stays for [`NatsServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing is answered, as with a
    /// server stuck under load; [`NatsServer::thaw`] lets it go on.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Undoes [`NatsServer::freeze`].
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        signal(self.child.as_ref().expect("the server runs").id(), name);
    }

    /// Limits the server's JetStream file storage to `bytes` (`max_file_store`), as a disk that
    /// size would, from the next [`NatsServer::restart`] on; `None` lifts the limit.
    pub fn limit_file_store(&self, bytes: Option<u64>) {
        let limit = bytes.map_or_else(String::new, |bytes| {
            format!("jetstream {{\n    max_file_store: {bytes}\n}}\n")
        });
        fs::write(
            self.dir.join("nats.conf"),
            format!(
                "{limit}include \"credentials/{}\"\n",
                credentials::AUTH_CONF
            ),
        )
        .expect("write the nats-server configuration");
    }

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        let child = spawn(&self.dir, Some(self.port));
        wait_until_listening(self.port);
        self.child = Some(child);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A fresh PostgreSQL database for one test, dropped (with its connections) on drop.
///
/// The server is `TEST_DATABASE_URL`, else `DATABASE_URL`, else the local one; the test connects
/// to `url()`. `psql` does the creating, so the harness needs no async runtime of its own.
#[derive(Debug)]
pub struct TestDatabase {
    server: String,
    name: String,
}

fn server_url() -> String {
    let url = env::var("TEST_DATABASE_URL")
        .or_else(|_| env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    // Keep scheme, credentials, host and port; the database part is ours to choose.
    match url.rfind('/') {
        Some(slash) if slash > "postgres://".len() => url[..slash].to_owned(),
        _ => url,
    }
}

fn psql(server: &str, sql: &str) {
    let status = Command::new("psql")
        .arg(format!("{server}/postgres"))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .stdout(Stdio::null())
        .status()
        .expect("run psql (install Debian's postgresql-client)");
    assert!(status.success(), "psql failed: {sql}");
}

impl TestDatabase {
    pub fn create() -> Self {
        Self::create_on(&server_url())
    }

    /// A fresh database on the server at `server` (`postgres://user@host:port`).
    pub fn create_on(server: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        psql(server, &format!("CREATE DATABASE {name}"));
        Self {
            server: server.to_owned(),
            name,
        }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(format!("{}/postgres", self.server))
            .args([
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The Python interpreter of a virtualenv under the workspace's `target/<name>` with
/// `requirements` (a path relative to the workspace root) installed from PyPI; made once and
/// remade when the requirements change. Tools such as the independent feed consumer and the
/// OpenAPI fuzzer run from it, so their dependencies never touch the system Python.
pub fn python_venv(name: &str, requirements: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join("target").join(name);
    let python = venv.join("bin/python");
    let wanted = fs::read_to_string(root.join(requirements))
        .unwrap_or_else(|e| panic!("cannot read {requirements}: {e}"));
    // Written last: a venv whose install was interrupted has none and is made again.
    let marker = venv.join("installed-requirements.txt");
    if fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return python;
    }
    let made = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .expect("python3 -m venv");
    assert!(made.success(), "could not create {venv:?}");
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "-r"])
        .arg(root.join(requirements))
        .status()
        .expect("pip install");
    assert!(installed.success(), "could not install {requirements}");
    fs::write(&marker, wanted).expect("write the marker");
    python
}
