//! A loopback TCP proxy in front of a real nats-server that can lose a client's pull requests.
//!
//! nats-server 2.9 now and then leaves a pull request unanswered: no message, no heartbeat, no
//! timeout status (seen in `projector bench`: an ephemeral consumer silent for a minute). The
//! proxy makes that happen on demand, and only that: it forwards every byte both ways except the
//! next `$JS.API.CONSUMER.MSG.NEXT.…` publications it is told to drop, so the server and the
//! client under test are the real ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The subject prefix of a pull consumer's "next messages" requests.
const PULL_REQUEST: &[u8] = b"$JS.API.CONSUMER.MSG.NEXT.";

/// Pull requests still to drop, and how many were.
#[derive(Debug, Default)]
struct Counters {
    to_drop: AtomicUsize,
    dropped: AtomicUsize,
}

/// The proxy, listening on a free loopback port until dropped.
#[derive(Debug)]
pub struct PullDropper {
    port: u16,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

impl PullDropper {
    /// Proxies to the loopback server at `server_url` (`nats://127.0.0.1:PORT`).
    pub async fn start(server_url: &str) -> Self {
        let server_port: u16 = server_url
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("a loopback server URL with its port");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let counters = Arc::new(Counters::default());
        let shared = Arc::clone(&counters);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, Arc::clone(&shared)));
            }
        });
        Self {
            port,
            counters,
            accept,
        }
    }

    /// The URL clients connect to instead of the server's.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Drops the next `count` pull requests any client sends.
    pub fn drop_pull_requests(&self, count: usize) {
        self.counters.to_drop.fetch_add(count, Ordering::SeqCst);
    }

    /// How many pull requests were dropped so far.
    pub fn dropped(&self) -> usize {
        self.counters.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for PullDropper {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies the server's bytes to the client as they are, and the client's operations to the
/// server, less the pull requests to drop.
async fn relay(client: TcpStream, server: TcpStream, counters: Arc<Counters>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while let Ok(read) = client_read.read(&mut chunk).await {
        if read == 0 {
            break;
        }
        pending.extend_from_slice(&chunk[..read]);
        let mut forward = Vec::with_capacity(pending.len());
        let mut start = 0;
        while let Some(length) = operation_length(&pending[start..]) {
            let operation = &pending[start..start + length];
            if !(is_pull_request(operation) && take_one(&counters)) {
                forward.extend_from_slice(operation);
            }
            start += length;
        }
        pending.drain(..start);
        if server_write.write_all(&forward).await.is_err() {
            break;
        }
    }
    down.abort();
}

/// Claims one of the drops still to make.
fn take_one(counters: &Counters) -> bool {
    let claimed = counters
        .to_drop
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    if claimed {
        counters.dropped.fetch_add(1, Ordering::SeqCst);
    }
    claimed
}

/// The length of the complete client operation at the start of `bytes`: its line, and for
/// `PUB`/`HPUB` the payload the line announces (its last field) with its CRLF; `None` until all
/// of it has arrived.
fn operation_length(bytes: &[u8]) -> Option<usize> {
    let line_end = bytes.windows(2).position(|w| w == b"\r\n")? + 2;
    let line = &bytes[..line_end - 2];
    let is_publish = line.starts_with(b"PUB ") || line.starts_with(b"HPUB ");
    if !is_publish {
        return Some(line_end);
    }
    let size: usize = std::str::from_utf8(line.rsplit(|b| *b == b' ').next()?)
        .ok()?
        .parse()
        .ok()?;
    let length = line_end + size + 2;
    (bytes.len() >= length).then_some(length)
}

/// Whether `operation` publishes to a pull consumer's "next messages" subject.
fn is_pull_request(operation: &[u8]) -> bool {
    [b"PUB ".as_slice(), b"HPUB ".as_slice()]
        .iter()
        .any(|verb| {
            operation.starts_with(verb) && operation[verb.len()..].starts_with(PULL_REQUEST)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_cut_at_their_announced_payloads() {
        let bytes =
            b"PING\r\nPUB a.b _INBOX.x 5\r\nhello\r\nHPUB c 12 14\r\nNATS/1.0\r\n\r\nhi\r\nSUB";
        assert_eq!(operation_length(bytes), Some(6));
        assert_eq!(operation_length(&bytes[6..]), Some(27));
        assert_eq!(operation_length(&bytes[33..]), Some(30));
        assert_eq!(operation_length(&bytes[63..]), None, "an unfinished line");
        assert_eq!(
            operation_length(b"PUB a 5\r\nhel"),
            None,
            "an unfinished payload"
        );
    }

    #[test]
    fn only_pull_requests_are_recognised() {
        assert!(is_pull_request(
            b"PUB $JS.API.CONSUMER.MSG.NEXT.S.c _INBOX.x 2\r\n{}\r\n"
        ));
        assert!(!is_pull_request(
            b"PUB $JS.API.CONSUMER.INFO.S.c _INBOX.x 0\r\n\r\n"
        ));
        assert!(!is_pull_request(b"SUB $JS.API.CONSUMER.MSG.NEXT.S.c 1\r\n"));
    }
}
