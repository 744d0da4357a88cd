//! A three-node JetStream cluster on loopback, for the tests of what a replicated stream does
//! when a node dies: the same accounts and permissions as [`NatsServer`](crate::NatsServer),
//! client ports the OS picks, route ports picked free just before the nodes start.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use event_store::access::Service;
use event_store::credentials;

use crate::binary::target_dir;
use crate::{
    free_port, nats_server_binary, read_ports, spawn_node, unique_dir, wait_until_listening,
    write_credentials,
};

/// How many nodes: the smallest cluster that keeps a quorum (and an R3 stream) with one down.
const NODES: usize = 3;

/// How long three fresh nodes get to gather into one JetStream meta group. They do in well
/// under a second, three seconds when the machine is loaded; a group that has not grown to
/// three by then never does (see [`NatsCluster::start`]).
const FORMING_PATIENCE: Duration = Duration::from_secs(15);

/// How many fresh clusters [`NatsCluster::start`] tries before it gives up: about one start in
/// ten leaves a node out, so five failing in a row means something else is wrong.
const STARTS: usize = 5;

/// How much of each node's log a failing test prints.
const LOG_TAIL_LINES: usize = 30;

/// One node of a [`NatsCluster`].
#[derive(Debug)]
struct Node {
    name: String,
    port: u16,
    /// The port it takes routes on; the OS picks it anew at each start.
    route_port: u16,
    /// Its HTTP monitoring port, where `/jsz` tells its view of the JetStream meta group.
    monitoring_port: u16,
    child: Option<Child>,
}

/// A JetStream cluster of three nodes (`n1`, `n2`, `n3`), owned by a test; every node dies with
/// it and its stores are removed.
#[derive(Debug)]
pub struct NatsCluster {
    binary: PathBuf,
    dir: PathBuf,
    nodes: Vec<Node>,
}

/// Node `name`'s configuration: JetStream, the cluster called `cluster` (a name of its own per
/// test cluster: two sharing a name merge when a route of one reaches a port the other took),
/// its route port `route_port` (`None`: one the OS picks, which no other test can take first)
/// and routes to `routes`.
fn node_config(
    name: &str,
    dir: &Path,
    cluster: &str,
    route_port: Option<u16>,
    routes: &[u16],
) -> String {
    let listen = route_port.map_or_else(|| "-1".to_owned(), |port| port.to_string());
    let routes: Vec<String> = routes
        .iter()
        .map(|port| format!("        nats-route://127.0.0.1:{port}\n"))
        .collect();
    format!(
        "server_name: {name}\n\
         jetstream {{\n    store_dir: \"{store}\"\n}}\n\
         cluster {{\n    name: {cluster}\n    listen: 127.0.0.1:{listen}\n    routes: [\n{routes}    ]\n}}\n\
         include \"credentials/{auth}\"\n",
        store = dir.join(name).display(),
        routes = routes.concat(),
        auth = credentials::AUTH_CONF,
    )
}

/// The nats-server the nodes run: `NATS_CLUSTER_SERVER_BIN`, else the one `deploy/test.sh`
/// installs under the target directory, else the machine's. It must be a release the product
/// trusts with replicated streams ([`event_store::replicates_safely`]): on an older one these
/// tests would measure the server's replica drift, not the product.
fn cluster_server_binary() -> PathBuf {
    let installed = target_dir().join("nats-cluster-server/bin/nats-server");
    let binary = std::env::var_os("NATS_CLUSTER_SERVER_BIN")
        .map(PathBuf::from)
        .or_else(|| installed.is_file().then_some(installed))
        .unwrap_or_else(nats_server_binary);
    let output = Command::new(&binary)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("run {} --version: {e}", binary.display()));
    // `nats-server: v2.10.26`
    let reported = String::from_utf8_lossy(&output.stdout);
    let version = reported.trim().rsplit(' ').next().unwrap_or_default();
    let (major, minor) = event_store::REPLICATION_SINCE;
    assert!(
        event_store::replicates_safely(version),
        "the cluster tests need nats-server {major}.{minor} or later, and {} is {version}: run \
         deploy/test.sh once (it installs one under target/nats-cluster-server) or set \
         NATS_CLUSTER_SERVER_BIN",
        binary.display()
    );
    binary
}

impl NatsCluster {
    /// Starts three nodes routed to each other and waits until they form one JetStream meta
    /// group of three.
    ///
    /// nats-server 2.10 sometimes elects a meta leader with two nodes and never adds the third
    /// (seen in about one start in ten when several clusters start at once on two busy cores,
    /// whether each node routes to all three route ports or to those started before it): every
    /// node reports the leader, `cluster_size` stays 2, and an R3 stream is refused with "no
    /// suitable peers for placement" for as long as the cluster lives. Such a cluster is
    /// dropped and a fresh one started, so the tests measure the product, not that start.
    pub fn start() -> Self {
        let binary = cluster_server_binary();
        for attempt in 1..=STARTS {
            let cluster = Self::launch(binary.clone());
            match cluster.wait_until_formed() {
                Ok(()) => return cluster,
                Err(views) => eprintln!(
                    "the test cluster in {} did not form a JetStream meta group of {NODES} in \
                     {FORMING_PATIENCE:?} (start {attempt} of {STARTS}); each node's view: \
                     {views}; starting a fresh cluster",
                    cluster.dir.display()
                ),
            }
        }
        panic!(
            "{STARTS} fresh test clusters in a row did not form a JetStream meta group of {NODES}"
        )
    }

    /// Starts three nodes routed to each other and waits until each accepts clients.
    fn launch(binary: PathBuf) -> Self {
        let dir = unique_dir("nats-cluster");
        write_credentials(&dir, &[]);
        let mut cluster = Self {
            binary,
            dir,
            nodes: Vec::with_capacity(NODES),
        };
        // Each node routes to those started before it; the routes they gossip make the mesh.
        // JetStream wants the first node routed too, so it routes to itself, on the one port
        // picked beforehand (nats-server drops a route to itself).
        let seed = free_port();
        for index in 0..NODES {
            let name = format!("n{}", index + 1);
            let seeded = (index == 0).then_some(seed);
            let node = cluster.spawn(name, None, seeded);
            cluster.nodes.push(node);
        }
        for node in &cluster.nodes {
            wait_until_listening(node.port);
        }
        cluster
    }

    /// Waits until every node names the same meta leader in a group of [`NODES`]; each node's
    /// view of the group when [`FORMING_PATIENCE`] runs out first.
    fn wait_until_formed(&self) -> Result<(), String> {
        let deadline = Instant::now() + FORMING_PATIENCE;
        loop {
            let views: Vec<Option<serde_json::Value>> = self
                .nodes
                .iter()
                .map(|node| meta_group(node.monitoring_port))
                .collect();
            let leader = |view: &Option<serde_json::Value>| {
                view.as_ref()
                    .filter(|group| group["cluster_size"] == NODES)
                    .and_then(|group| group["leader"].as_str().map(str::to_owned))
                    .filter(|leader| !leader.is_empty())
            };
            let first = leader(&views[0]);
            if first.is_some() && views.iter().all(|view| leader(view) == first) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let described: Vec<String> = self
                    .nodes
                    .iter()
                    .zip(&views)
                    .map(|(node, view)| match view {
                        Some(group) => format!("{}: {group}", node.name),
                        None => format!("{}: no answer", node.name),
                    })
                    .collect();
                return Err(described.join("; "));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts node `name` (client port `port`, or one the OS picks) routed to every other node
    /// started so far, or only to itself on route port `seed`.
    fn spawn(&self, name: String, port: Option<u16>, seed: Option<u16>) -> Node {
        let routes: Vec<u16> = self
            .nodes
            .iter()
            .filter(|node| node.name != name)
            .map(|node| node.route_port)
            .chain(seed)
            .collect();
        let cluster = self
            .dir
            .file_name()
            .map_or_else(|| "test".into(), |n| n.to_string_lossy());
        fs::write(
            self.dir.join(format!("{name}.conf")),
            node_config(&name, &self.dir, &cluster, seed, &routes),
        )
        .expect("write a node's configuration");
        let monitoring = ["-m".as_ref(), "-1".as_ref()];
        let child = spawn_node(&self.binary, &self.dir, &name, port, &monitoring);
        let ports = read_ports(&self.dir, child.id());
        Node {
            name,
            port: ports.client,
            route_port: ports.cluster.expect("a cluster node has a route port"),
            monitoring_port: ports
                .monitoring
                .expect("a node started with -m serves monitoring"),
            child: Some(child),
        }
    }

    /// The client URL of node `index` (0-based). A client given one node learns the others
    /// from it and reconnects to them when that node dies.
    pub fn url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[index].port)
    }

    /// Every node's URL, comma-separated, as `NATS_URL` takes them.
    pub fn urls(&self) -> String {
        (0..self.nodes.len())
            .map(|index| self.url(index))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The index of the node called `name` (`server_name`, as stream info reports leaders).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    /// The seed file `service` logs in with, on every node.
    pub fn nkey_file(&self, service: Service) -> PathBuf {
        credentials::nkey_file(&self.dir.join("credentials"), service)
    }

    /// A client logged in as `service` through node `index`.
    pub async fn connect(&self, index: usize, service: Service) -> async_nats::Client {
        credentials::login(
            async_nats::ConnectOptions::new(),
            service,
            Some(&self.nkey_file(service)),
        )
        .expect("the test cluster's seed")
        .connect(self.url(index))
        .await
        .unwrap_or_else(|e| panic!("connect to node {index} as {}: {e}", service.name()))
    }

    /// Kills node `index` with SIGKILL, as a crash would; its store stays for
    /// [`NatsCluster::restart`].
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops node `index` with SIGSTOP: it holds its connections but answers nothing, as a node
    /// cut off by a network partition does, until [`NatsCluster::resume`].
    pub fn pause(&self, index: usize) {
        self.signal(index, "STOP");
    }

    /// Lets a node stopped by [`NatsCluster::pause`] run again (SIGCONT).
    pub fn resume(&self, index: usize) {
        self.signal(index, "CONT");
    }

    fn signal(&self, index: usize, name: &str) {
        let child = self.nodes[index].child.as_ref().expect("a running node");
        crate::signal(child.id(), name);
    }

    /// Starts node `index` again on its client port with its store, routed to the other nodes;
    /// it rejoins the cluster.
    pub fn restart(&mut self, index: usize) {
        self.kill(index);
        let (name, port) = (self.nodes[index].name.clone(), self.nodes[index].port);
        let node = self.spawn(name, Some(port), None);
        wait_until_listening(node.port);
        self.nodes[index] = node;
    }
}

/// The JetStream meta group as the node monitored on `port` sees it (`/jsz`'s `meta_cluster`),
/// or `None` while it does not answer.
fn meta_group(port: u16) -> Option<serde_json::Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /jsz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    let mut jsz: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(jsz["meta_cluster"].take())
}

impl Drop for NatsCluster {
    /// Kills every node and removes the stores; when a test failed, first prints the end of
    /// each node's log, which goes with the directory.
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
        if thread::panicking() {
            for node in &self.nodes {
                let log = fs::read_to_string(self.dir.join(format!("{}.log", node.name)))
                    .unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
                eprintln!(
                    "--- the last {} lines of test cluster node {}'s log ---",
                    tail.len(),
                    node.name
                );
                eprintln!("{}", tail.join("\n"));
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the cluster tests build on: a cluster handed to a test already has every node in
    /// one meta group, so an R3 stream finds its three peers. Several start at once, as
    /// nextest runs the cluster tests, since that is when a start leaves a node out.
    #[test]
    fn clusters_started_at_once_each_hold_every_node_in_one_meta_group() {
        let clusters: Vec<NatsCluster> = thread::scope(|scope| {
            let starts: Vec<_> = (0..3).map(|_| scope.spawn(NatsCluster::start)).collect();
            starts
                .into_iter()
                .map(|start| start.join().expect("a cluster starts"))
                .collect()
        });
        for cluster in &clusters {
            let leaders: Vec<(u64, String)> = cluster
                .nodes
                .iter()
                .map(|node| {
                    let group = meta_group(node.monitoring_port).expect("a node answers /jsz");
                    let size = group["cluster_size"].as_u64().unwrap_or_default();
                    (
                        size,
                        group["leader"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let leader = leaders[0].1.clone();
            assert!(!leader.is_empty(), "no meta leader: {leaders:?}");
            assert_eq!(leaders, vec![(NODES as u64, leader); NODES]);
        }
    }
}
