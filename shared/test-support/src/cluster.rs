//! A three-node JetStream cluster on loopback, for the tests of what a replicated stream does
//! when a node dies: the same accounts and permissions as [`NatsServer`](crate::NatsServer),
//! client ports the OS picks, route ports picked free just before the nodes start.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use event_store::access::Service;
use event_store::credentials;

use crate::binary::target_dir;
use crate::{
    free_port, nats_server_binary, read_ports, spawn_node, unique_dir, wait_until_listening,
    write_credentials,
};

/// How many nodes: the smallest cluster that keeps a quorum (and an R3 stream) with one down.
const NODES: usize = 3;

/// One node of a [`NatsCluster`].
#[derive(Debug)]
struct Node {
    name: String,
    port: u16,
    /// The port it takes routes on; the OS picks it anew at each start.
    route_port: u16,
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
    /// Starts three nodes routed to each other and waits until each accepts clients. JetStream
    /// elects its meta leader a moment later; provisioning retries until it has.
    pub fn start() -> Self {
        let binary = cluster_server_binary();
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
            let (port, route_port, child) = cluster.spawn(&name, None, seeded);
            cluster.nodes.push(Node {
                name,
                port,
                route_port,
                child: Some(child),
            });
        }
        for node in &cluster.nodes {
            wait_until_listening(node.port);
        }
        cluster
    }

    /// Starts node `name` (client port `port`, or one the OS picks) routed to every other node
    /// started so far, or only to itself on route port `seed`; its client port, route port and
    /// process.
    fn spawn(&self, name: &str, port: Option<u16>, seed: Option<u16>) -> (u16, u16, Child) {
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
            node_config(name, &self.dir, &cluster, seed, &routes),
        )
        .expect("write a node's configuration");
        let child = spawn_node(&self.binary, &self.dir, name, port, &[]);
        let ports = read_ports(&self.dir, child.id());
        let route_port = ports.cluster.expect("a cluster node has a route port");
        (ports.client, route_port, child)
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
        let (port, route_port, child) = self.spawn(&name, Some(port), None);
        wait_until_listening(port);
        let node = &mut self.nodes[index];
        node.route_port = route_port;
        node.child = Some(child);
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
