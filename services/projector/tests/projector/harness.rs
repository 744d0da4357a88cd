//! What every projector test needs: the command application (the rules every command goes
//! through, without the command service's HTTP edge), the projector in-process or as its binary,
//! direct JetStream publishing of generated commits, and SQL helpers that read rows as JSON and
//! checksum whole schemas.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use chrono::{DateTime, Utc};
use command_app::handler::{CommandHandler, CommandRequest, HandlerSettings};
use command_app::outcome::{CommandError, Settled};
use event_store::access::Service as Identity;
use event_store::{
    BATCH_CONTENT_TYPE, CloudEvent, CommandMeta, Commit, EventStore, Repository, StreamSettings,
};
use projector::Projector;
use projector::batch::Delivered;
use remediation_domain::calendar::vietnam;
use remediation_domain::text::{Name, UnitId};
use remediation_domain::unit::{UnitEvent, UnitKind};
use remediation_domain::{Actor, AggregateRef, Event, Role};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use test_support::NatsServer;
pub use test_support::{all_checksums, checkpoint, checksums};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const STREAM: &str = "PLAN_EVENTS";
pub const SEED: &str = include_str!("../../../../deploy/seed/ke-hoach-63.json");
/// A guard against hanging forever, never an assertion about speed: it only turns a projector
/// that stopped making progress into a failure with a message instead of a stuck CI job.
pub const PATIENCE: Duration = Duration::from_secs(240);

/// Parses an RFC 3339 instant.
pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// An instant as PostgreSQL renders a `timestamptz` in JSON with `TimeZone` Asia/Ho_Chi_Minh:
/// microseconds (trailing zeros dropped) and a +07:00 offset.
pub fn ts(t: DateTime<Utc>) -> String {
    let local = t.with_timezone(&vietnam());
    let mut out = local.format("%Y-%m-%dT%H:%M:%S").to_string();
    let micros = local.timestamp_subsec_micros();
    if micros > 0 {
        out.push('.');
        out.push_str(format!("{micros:06}").trim_end_matches('0'));
    }
    out.push_str("+07:00");
    out
}

// ── the command application ──────────────────────────────────────────────────────────────

/// The command application on its own NATS connection, as the command service runs it: every
/// command the tests send is decided by the domain, hash-chained and appended with its expected
/// sequence.
pub struct CommandService {
    pub handler: Arc<CommandHandler>,
    client: async_nats::Client,
}

impl CommandService {
    pub async fn start(nats: &NatsServer) -> Self {
        let (client, js) = service_kit::connect_nats(
            &nats.url(),
            Identity::CommandApi,
            Some(&nats.nkey_file(Identity::CommandApi)),
            "projector-tests",
            Duration::from_secs(5),
        )
        .await
        .expect("connect as the command service");
        let store = service_kit::open_store(&js, &StreamSettings::default())
            .await
            .expect("open the event store");
        let handler = CommandHandler::new(
            Repository::new(store, NonZeroUsize::new(1_000).expect("non-zero")),
            HandlerSettings::default(),
        );
        Self {
            handler: Arc::new(handler),
            client,
        }
    }

    /// Loads the Plan 63 seed through the command handler; returns the number of commits.
    pub async fn load_seed(&self) -> usize {
        let seed = remediation_domain::seed::Seed::from_json(SEED).expect("seed parses");
        command_app::seed::load_seed(&self.handler, &seed)
            .await
            .expect("seed loads")
            .changed
    }

    pub async fn shutdown(self) {
        self.client.flush().await.expect("flush what was published");
    }
}

/// Someone sending commands.
#[derive(Debug, Clone)]
pub struct Who {
    pub user: String,
    pub role: Role,
    pub unit: Option<String>,
}

pub fn who(user: &str, role: Role, unit: Option<&str>) -> Who {
    Who {
        user: user.to_owned(),
        role,
        unit: unit.map(str::to_owned),
    }
}

/// One command the test sent and the commit it made.
#[derive(Debug, Clone)]
pub struct Sent {
    pub command: String,
    pub user: String,
    pub role: Role,
    pub unit: Option<String>,
    pub effective: Option<DateTime<Utc>>,
    pub sequence: u64,
}

/// Sends commands, written as their JSON bodies, and remembers what was sent.
pub struct Api {
    handler: Arc<CommandHandler>,
    pub sent: Vec<Sent>,
}

impl Api {
    pub fn new(service: &CommandService) -> Self {
        Self {
            handler: service.handler.clone(),
            sent: Vec::new(),
        }
    }

    pub async fn send(
        &self,
        command: &str,
        who: &Who,
        effective: Option<&str>,
        body: &Value,
    ) -> Result<Settled, CommandError> {
        let spec = remediation_domain::COMMANDS
            .iter()
            .find(|spec| spec.name == command)
            .unwrap_or_else(|| panic!("no command named {command}"));
        let command =
            (spec.decode)(body.clone()).unwrap_or_else(|e| panic!("{command} {body}: {e}"));
        let actor = Actor {
            user: who.user.clone(),
            unit: who
                .unit
                .as_deref()
                .map(|u| UnitId::new(u).expect("unit id")),
            role: who.role,
        };
        self.handler
            .handle(CommandRequest {
                command,
                principal: actor.into(),
                correlation_id: None,
                causation_id: None,
                effective_at: effective.map(at),
                idempotency: None,
            })
            .await
            .map(|answer| answer.settled)
    }

    /// Sends a command that must append a commit; returns its stream sequence.
    pub async fn post(
        &mut self,
        command: &str,
        who: &Who,
        effective: Option<&str>,
        body: Value,
    ) -> u64 {
        let receipt = self
            .send(command, who, effective, &body)
            .await
            .unwrap_or_else(|e| panic!("{command} {body} failed: {e}"))
            .unwrap_or_else(|e| panic!("{command} {body} refused: {e}"));
        assert!(receipt.changed, "{command} {body} changed nothing");
        let sequence = receipt.stream_sequence;
        self.sent.push(Sent {
            command: command.to_owned(),
            user: who.user.clone(),
            role: who.role,
            unit: who.unit.clone(),
            effective: effective.map(at),
            sequence,
        });
        sequence
    }
}

// ── NATS ─────────────────────────────────────────────────────────────────────────────────────

/// JetStream as the operator: tests provision and publish generated commits directly.
pub async fn jetstream(nats: &NatsServer) -> (async_nats::Client, jetstream::Context) {
    let client = nats.connect(Identity::Admin).await;
    let js = jetstream::new(client.clone());
    (client, js)
}

/// Creates the stream (and the idempotency bucket) as the command side would.
pub async fn provision(js: &jetstream::Context) {
    event_store::provision(js, &StreamSettings::default())
        .await
        .expect("provision the stream");
}

/// A fresh stream, provisioned, holding two units' registrations (stream sequences 1 and 2):
/// the operator's connection, its JetStream context and the publisher to go on with.
pub async fn stream_with_two_units(
    nats: &NatsServer,
) -> (async_nats::Client, jetstream::Context, Publisher) {
    let (client, js) = jetstream(nats).await;
    provision(&js).await;
    let publisher = Publisher::after_two_units(&js).await;
    (client, js, publisher)
}

/// A projector started with `config` on `nats`'s fresh stream of two units, caught up on them.
pub struct CaughtUp {
    /// Keeps the operator's connection open for the test.
    pub admin: async_nats::Client,
    pub publisher: Publisher,
    pub projector: InProcessProjector,
    /// To `config`'s database.
    pub conn: PgConnection,
}

/// [`stream_with_two_units`], then a projector started with `config` (which may reach NATS
/// through a proxy of the test's) and waited for until both projections applied them.
pub async fn caught_up_on_two_units(nats: &NatsServer, config: &projector::Config) -> CaughtUp {
    let (admin, _js, mut publisher) = stream_with_two_units(nats).await;
    publisher.flush().await;
    let projector = InProcessProjector::start(config).await;
    let mut conn = connect(&config.database_url).await;
    wait_for_checkpoints(&mut conn, "", 2).await;
    CaughtUp {
        admin,
        publisher,
        projector,
        conn,
    }
}

/// The value `name` has for `projection` in a Prometheus text exposition.
pub fn metric(metrics: &str, name: &str, projection: &str) -> Option<String> {
    let prefix = format!("{name}{{projection=\"{projection}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
}

pub async fn stream_head(js: &jetstream::Context) -> u64 {
    let mut stream = js.get_stream(STREAM).await.expect("stream");
    stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence
}

pub async fn open_store(js: &jetstream::Context) -> EventStore {
    EventStore::open(js.clone(), StreamSettings::default())
        .await
        .expect("open the event store")
}

/// Every commit of the stream, in order, as the event store reads them.
pub async fn all_commits(store: &EventStore, head: u64) -> Vec<Commit> {
    let mut commits = Vec::new();
    for sequence in 1..=head {
        commits.push(store.commit_at(sequence).await.expect("commit"));
    }
    commits
}

/// Every message of the stream, in order, as a consumer would deliver them.
pub async fn all_messages(js: &jetstream::Context, head: u64) -> Vec<Delivered> {
    let stream = js.get_stream(STREAM).await.expect("stream");
    let mut messages = Vec::new();
    for sequence in 1..=head {
        let message = stream.get_raw_message(sequence).await.expect("raw message");
        messages.push(Delivered {
            sequence,
            payload: message.payload,
        });
    }
    messages
}

/// The envelope fields of a generated command.
pub fn meta(command_name: &'static str, effective: DateTime<Utc>) -> CommandMeta {
    let command_id = uuid::Uuid::now_v7();
    CommandMeta {
        command_id,
        command_name,
        actor: Actor {
            user: "generator".to_owned(),
            unit: None,
            role: Role::ProvinceOffice,
        },
        correlation_id: "projector-tests".to_owned(),
        causation_id: command_id.to_string(),
        recorded_at: Utc::now(),
        effective_at: effective,
    }
}

/// The event type [`Publisher::unknown_type`] publishes under.
pub const UNKNOWN_TYPE: &str = "vn.gov.thanhhoa.remediation.unit.teleported.v1";

/// A unit's registration: the smallest valid commit.
pub fn registered(id: &str, name: &str) -> (AggregateRef, Event) {
    (
        AggregateRef::Unit(UnitId::new(id).expect("unit id")),
        Event::Unit(UnitEvent::Registered {
            name: Name::new(name).expect("name"),
            kind: UnitKind::Department,
        }),
    )
}

/// Publishes commits straight to JetStream, pipelined, each with the expected last sequence of
/// its subject, as the command side would write them. Sequences are predicted (the stream is
/// ours alone) and checked against the acknowledgements.
pub struct Publisher {
    js: jetstream::Context,
    next: u64,
    last_on_subject: HashMap<String, u64>,
    /// The head of each aggregate's hash chain, as published so far.
    heads: HashMap<String, String>,
    pending: Vec<(u64, PublishAckFuture)>,
}

impl Publisher {
    /// For a stream whose head is `head` and whose subjects are all new.
    pub fn new(js: &jetstream::Context, head: u64) -> Self {
        Self {
            js: js.clone(),
            next: head + 1,
            last_on_subject: HashMap::new(),
            heads: HashMap::new(),
            pending: Vec::new(),
        }
    }

    /// Publishes `events` as one commit on `target`'s subject; returns its stream sequence.
    pub async fn commit(
        &mut self,
        target: &AggregateRef,
        events: &[Event],
        meta: &CommandMeta,
    ) -> u64 {
        let mut envelopes: Vec<CloudEvent> = events
            .iter()
            .map(|e| CloudEvent::new(target, e, meta))
            .collect();
        self.seal(target, &mut envelopes);
        let payload = serde_json::to_vec(&envelopes).expect("encode");
        self.raw(
            &format!("events.{}.{}", target.kind(), target.id()),
            payload,
        )
        .await
    }

    /// Publishes a unit's registration ([`registered`]); returns its stream sequence.
    pub async fn register(&mut self, id: &str, name: &str) -> u64 {
        let (target, event) = registered(id, name);
        self.commit(&target, &[event], &meta("register-unit", Utc::now()))
            .await
    }

    /// For a fresh stream, after publishing two units' registrations (stream sequences 1 and 2).
    pub async fn after_two_units(js: &jetstream::Context) -> Self {
        let mut publisher = Self::new(js, 0);
        for (id, name) in [("so-tai-chinh", "Sở Tài chính"), ("so-y-te", "Sở Y tế")] {
            publisher.register(id, name).await;
        }
        publisher
    }

    /// A unit's registration under an event type nobody knows, sealed onto the unit's chain as the
    /// command service would: it passes the chain check, and the core projection cannot decode
    /// it. Returns its stream sequence.
    pub async fn unknown_type(&mut self, unit_id: &str, name: &str) -> u64 {
        let (target, event) = registered(unit_id, name);
        let mut envelope = CloudEvent::new(&target, &event, &meta("register-unit", Utc::now()));
        envelope.event_type = UNKNOWN_TYPE.to_owned();
        self.seal(&target, std::slice::from_mut(&mut envelope));
        let payload = serde_json::to_vec(&[envelope]).expect("json");
        self.raw(&format!("events.unit.{unit_id}"), payload).await
    }

    /// Links `envelopes` onto `target`'s hash chain, as the command service does.
    pub fn seal(&mut self, target: &AggregateRef, envelopes: &mut [CloudEvent]) {
        let key = format!("{}/{}", target.kind(), target.id());
        let head = event_store::seal(self.heads.get(&key).map_or("", String::as_str), envelopes);
        self.heads.insert(key, head);
    }

    /// Publishes any payload to `subject`; returns its stream sequence.
    pub async fn raw(&mut self, subject: &str, payload: Vec<u8>) -> u64 {
        let sequence = self.next;
        let expected = self
            .last_on_subject
            .insert(subject.to_owned(), sequence)
            .unwrap_or(0);
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", BATCH_CONTENT_TYPE);
        let publish = PublishMessage::build()
            .payload(payload.into())
            .headers(headers)
            .expected_last_subject_sequence(expected);
        let ack = self
            .js
            .send_publish(subject.to_owned(), publish)
            .await
            .expect("publish");
        self.pending.push((sequence, ack));
        self.next += 1;
        if self.pending.len() >= 1_000 {
            self.flush().await;
        }
        sequence
    }

    /// Waits for every outstanding acknowledgement.
    pub async fn flush(&mut self) {
        for (sequence, ack) in self.pending.drain(..) {
            let ack = ack.await.expect("publish acknowledged");
            assert_eq!(ack.sequence, sequence, "stored at the predicted sequence");
        }
    }
}

// ── the projector ────────────────────────────────────────────────────────────────────────────

pub fn projector_config(
    nats: &NatsServer,
    database_url: &str,
    prefix: &str,
    batch_size: usize,
) -> projector::Config {
    projector::Config {
        nats_url: nats.url(),
        nats_nkey_file: Some(nats.nkey_file(Identity::Projector)),
        database_url: database_url.to_owned(),
        bind: "127.0.0.1:0".parse().expect("address"),
        http_max_connections: service_kit::DEFAULT_MAX_CONNECTIONS,
        stream_name: STREAM.to_owned(),
        schema_prefix: prefix.to_owned(),
        batch_size,
        batch_interval: Duration::from_millis(projector::DEFAULT_BATCH_INTERVAL_MS),
        snapshot_interval: None,
        snapshot_every: time_travel::DEFAULT_EVERY,
    }
}

/// The projector running in this process, its router served on a free port.
pub struct InProcessProjector {
    pub projector: Projector,
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    run: Option<JoinHandle<()>>,
    http: JoinHandle<()>,
}

impl InProcessProjector {
    pub async fn start(config: &projector::Config) -> Self {
        let projector = Projector::connect(config)
            .await
            .expect("projector connects");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let router = projector.router();
        let http = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let run = tokio::spawn(projector.clone().run(async {
            let _ = stopped.await;
        }));
        Self {
            projector,
            url,
            stop: Some(stop),
            run: Some(run),
            http,
        }
    }

    /// Stops the projections (in-flight batches finish) and the HTTP server.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(run) = self.run.take() {
            run.await.expect("projector task");
        }
        self.http.abort();
    }
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], test_support::free_port()))
}

/// The projector binary as CI builds it.
pub fn projector_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_projector"))
}

/// A child process that is killed (SIGKILL) and reaped when dropped, so that a failing test
/// leaves no projector behind.
#[derive(Debug)]
pub struct Spawned(pub Child);

impl Spawned {
    /// `kill -9`, and wait for it to be gone.
    pub fn kill(&mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reap");
    }

    /// SIGTERM, as a service manager stops it; returns how it exited (within `PATIENCE`).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM");
        let started = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("child status") {
                return status;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the projector did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        self.0.try_wait().expect("child status").is_none()
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.0.wait().expect("wait for the child")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns the projector binary with its configuration in the environment; its log goes to `log`.
pub fn spawn_projector(
    args: &[&str],
    nats: &NatsServer,
    database_url: &str,
    addr: SocketAddr,
    batch_size: usize,
    schema_prefix: &str,
    log: &std::path::Path,
) -> Spawned {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the log file");
    Command::new(projector_binary())
        .args(args)
        .env("NATS_URL", nats.url())
        .env("NATS_NKEY_FILE", nats.nkey_file(Identity::Projector))
        .env("DATABASE_URL", database_url)
        .env("PROJECTOR_ADDR", addr.to_string())
        .env("STREAM_NAME", STREAM)
        .env("SCHEMA_PREFIX", schema_prefix)
        .env("BATCH_SIZE", batch_size.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Spawned)
        .expect("spawn the projector binary")
}

/// GET `url`: status and JSON (or text as a JSON string).
pub async fn get(url: &str) -> (StatusCode, Value) {
    let response = reqwest::get(url).await.expect("GET");
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

pub async fn get_text(url: &str) -> (StatusCode, String) {
    let response = reqwest::get(url).await.expect("GET");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

// ── PostgreSQL ───────────────────────────────────────────────────────────────────────────────

/// A connection for assertions; timestamps render in Vietnamese local time.
pub async fn connect(url: &str) -> PgConnection {
    let mut conn = PgConnection::connect(url)
        .await
        .expect("connect PostgreSQL");
    sqlx::query("SET TIME ZONE 'Asia/Ho_Chi_Minh'")
        .execute(&mut conn)
        .await
        .expect("set the time zone");
    conn
}

/// Waits until the core and audit checkpoints under `prefix` are both at least `target`.
pub async fn wait_for_checkpoints(conn: &mut PgConnection, prefix: &str, target: u64) {
    test_support::wait_for_checkpoints(conn, prefix, target, PATIENCE).await;
}

/// The rows of `sql` as JSON objects, ordered by `order` (an expression over its columns).
pub async fn rows(conn: &mut PgConnection, sql: &str, order: &str) -> Vec<Value> {
    let wrapped = format!(
        "SELECT coalesce(jsonb_agg(to_jsonb(q) ORDER BY {order}), '[]'::jsonb) FROM ({sql}) q"
    );
    let value: Value = sqlx::query_scalar(AssertSqlSafe(wrapped))
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    match value {
        Value::Array(rows) => rows,
        other => panic!("expected an array, got {other}"),
    }
}

/// Compares row lists one by one, so a failure names the first row that differs.
#[track_caller]
pub fn assert_rows(what: &str, actual: &[Value], expected: &[Value]) {
    for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(
            a, e,
            "{what}: row {index} differs\n actual:   {a}\n expected: {e}"
        );
    }
    assert_eq!(
        actual.len(),
        expected.len(),
        "{what}: {} rows, expected {}\n actual: {actual:#?}",
        actual.len(),
        expected.len()
    );
}
