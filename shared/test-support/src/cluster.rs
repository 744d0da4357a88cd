//! A three-node JetStream cluster on loopback, for the tests of what a replicated stream does
//! when a node dies: the same accounts and permissions as [`NatsServer`](crate::NatsServer),
//! client ports the OS picks, route ports picked free just before the nodes start.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;

use event_store::access::Service;
use event_store::credentials;

use crate::{
    free_port, read_port, spawn_node, unique_dir, wait_until_listening, write_credentials,
};

/// How many nodes: the smallest cluster that keeps a quorum (and an R3 stream) with one down.
const NODES: usize = 3;

/// One node of a [`NatsCluster`].
#[derive(Debug)]
struct Node {
    name: String,
    port: u16,
    child: Option<Child>,
}

/// A JetStream cluster of three nodes (`n1`, `n2`, `n3`), owned by a test; every node dies with
/// it and its stores are removed.
#[derive(Debug)]
pub struct NatsCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

fn node_config(name: &str, dir: &Path, route_port: u16, routes: &[u16]) -> String {
    let routes: Vec<String> = routes
        .iter()
        .map(|port| format!("        nats-route://127.0.0.1:{port}\n"))
        .collect();
    format!(
        "server_name: {name}\n\
         jetstream {{\n    store_dir: \"{store}\"\n}}\n\
         cluster {{\n    name: test\n    listen: 127.0.0.1:{route_port}\n    routes: [\n{routes}    ]\n}}\n\
         include \"credentials/{auth}\"\n",
        store = dir.join(name).display(),
        routes = routes.concat(),
        auth = credentials::AUTH_CONF,
    )
}

impl NatsCluster {
    /// Starts three nodes routed to each other and waits until each accepts clients. JetStream
    /// elects its meta leader a moment later; provisioning retries until it has.
    pub fn start() -> Self {
        let dir = unique_dir("nats-cluster");
        write_credentials(&dir, &[]);
        let routes: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
        let mut nodes = Vec::with_capacity(NODES);
        for (index, route_port) in routes.iter().enumerate() {
            let name = format!("n{}", index + 1);
            fs::write(
                dir.join(format!("{name}.conf")),
                node_config(&name, &dir, *route_port, &routes),
            )
            .expect("write a node's configuration");
            let child = spawn_node(&dir, &name, None, &[]);
            let port = read_port(&dir, child.id());
            nodes.push(Node {
                name,
                port,
                child: Some(child),
            });
        }
        for node in &nodes {
            wait_until_listening(node.port);
        }
        Self { dir, nodes }
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
        self.signal(index, "-STOP");
    }

    /// Lets a node stopped by [`NatsCluster::pause`] run again (SIGCONT).
    pub fn resume(&self, index: usize) {
        self.signal(index, "-CONT");
    }

    fn signal(&self, index: usize, signal: &str) {
        let child = self.nodes[index].child.as_ref().expect("a running node");
        let sent = std::process::Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill {signal} node {index}");
    }

    /// Starts node `index` again on its port with its store; it rejoins the cluster.
    pub fn restart(&mut self, index: usize) {
        self.kill(index);
        let node = &self.nodes[index];
        let child = spawn_node(&self.dir, &node.name, Some(node.port), &[]);
        wait_until_listening(node.port);
        self.nodes[index].child = Some(child);
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
