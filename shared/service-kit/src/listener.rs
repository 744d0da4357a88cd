//! The services' HTTP listener: a TCP listener that holds at most a set number of connections
//! open at once, and recycles the oldest when it is full.
//!
//! Why: every open connection costs the service memory whether or not its request is ever
//! decided — hyper's buffers, the connection's task, the request it is reading. An open-loop
//! client that opens a new connection whenever its others are busy (5 000 commands/s on two
//! cores) had command-api holding 3 587 connections and 159 MB resident, although `MAX_IN_FLIGHT`
//! refused every command beyond 256 at once. Beyond the limit a new connection waits for a slot,
//! and those behind it wait in the kernel's accept queue (`runtime::ACCEPT_QUEUE`), which costs
//! the service nothing.
//!
//! A full listener does not wait for a connection to close by itself: a client's pool of idle
//! keep-alive connections would hold every slot while its new connections wait in the queue (with
//! a plain limit, commands at 5 000/s waited up to 28 s, and minutes without an idle timeout).
//! It asks its oldest connection to finish the request it is serving, if any, and close; then the
//! next oldest, every [`RECYCLE_EVERY`], until a slot frees. So under pressure keep-alive is given
//! up, oldest first, and a waiting connection waits about as long as one request takes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Connections a service holds open at once (`HTTP_MAX_CONNECTIONS`): four times command-api's
/// 256 commands in flight, so that a client's pool can keep idle connections while every slot
/// is busy. At 20–40 kB a connection (measured under the 5 000 commands/s flood), at most
/// 20–40 MB; the flood that reached 3 587 connections without a limit stays under it in most runs.
pub const DEFAULT_MAX_CONNECTIONS: NonZeroU32 = NonZeroU32::new(1024).expect("non-zero");

/// How long a full listener waits for the connection it asked to close before it asks the next
/// oldest: about one command's time on a busy machine, so that a connection held by a long
/// request (a read-your-writes wait, an export) does not hold the queue up.
const RECYCLE_EVERY: Duration = Duration::from_millis(20);

/// At most one warning this often while connections wait for a slot, so that a flood is seen in
/// the log without flooding it.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A TCP listener that accepts a connection only while fewer than its limit are open.
#[derive(Debug)]
pub struct HttpListener {
    tcp: TcpListener,
    slots: Arc<Semaphore>,
    max: NonZeroU32,
    /// The open connections' close requests, oldest first (closed ones are dropped lazily).
    open: VecDeque<Weak<Notify>>,
    last_warning: Option<Instant>,
}

impl HttpListener {
    pub fn new(tcp: TcpListener, max_connections: NonZeroU32) -> Self {
        Self {
            tcp,
            slots: Arc::new(Semaphore::new(max_connections.get() as usize)),
            max: max_connections,
            open: VecDeque::new(),
            last_warning: None,
        }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// The next connection and its slot, once one is free. The connection is taken from the
    /// kernel's queue first, so that the oldest are recycled only for a client that is there (one
    /// connection beyond the limit, the one waiting for its slot, is held at most).
    pub(crate) async fn accept(&mut self) -> (TcpStream, SocketAddr, Slot) {
        // axum's accept logs the errors of accepting and retries: a client that reset its
        // connection at once, or no file descriptor left for a second.
        let (stream, remote) = axum::serve::Listener::accept(&mut self.tcp).await;
        let permit = self.permit().await;
        let close = Arc::new(Notify::new());
        if self.open.len() >= 2 * self.max.get() as usize {
            self.open.retain(|signal| signal.strong_count() > 0);
        }
        self.open.push_back(Arc::downgrade(&close));
        (
            stream,
            remote,
            Slot {
                close,
                _permit: permit,
            },
        )
    }

    /// Stops listening, asks every open connection to answer what it holds and close, and
    /// waits until all have: until every slot is back.
    pub(crate) async fn close(mut self) {
        drop(self.tcp);
        for signal in self.open.drain(..) {
            if let Some(close) = signal.upgrade() {
                close.notify_one();
            }
        }
        // The semaphore is never closed, so acquiring only waits.
        let _all = self.slots.acquire_many(self.max.get()).await;
    }

    /// A permit for the next connection; while all are taken, the oldest connections are asked
    /// to close, one every [`RECYCLE_EVERY`].
    async fn permit(&mut self) -> OwnedSemaphorePermit {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return permit;
        }
        self.warn_full();
        loop {
            self.recycle_oldest();
            if let Ok(Ok(permit)) =
                tokio::time::timeout(RECYCLE_EVERY, self.slots.clone().acquire_owned()).await
            {
                return permit;
            }
        }
    }

    /// Asks the oldest open connection to close once its request, if any, is answered.
    fn recycle_oldest(&mut self) {
        while let Some(signal) = self.open.pop_front() {
            if let Some(close) = signal.upgrade() {
                close.notify_one();
                return;
            }
        }
    }

    fn warn_full(&mut self) {
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|last| now.duration_since(last) >= WARN_EVERY)
        {
            self.last_warning = Some(now);
            tracing::warn!(
                max_connections = self.max.get(),
                "all connections in use; the oldest are closed as new ones wait"
            );
        }
    }
}

/// Tests and embedders that bind their own socket get the default limit.
impl From<TcpListener> for HttpListener {
    fn from(tcp: TcpListener) -> Self {
        Self::new(tcp, DEFAULT_MAX_CONNECTIONS)
    }
}

/// A connection's place among the open ones, held by the task that serves it: the place is
/// given back when the task ends.
#[derive(Debug)]
pub(crate) struct Slot {
    close: Arc<Notify>,
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    /// Resolves once the listener asks this connection to close: it is the oldest of a full
    /// listener, or the service shuts down.
    pub(crate) async fn close_requested(&self) {
        self.close.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::HttpListener;

    /// Serves `/` and `/slow` (answered after 500 ms) on a listener that holds one connection.
    async fn server_of_one() -> (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = tcp.local_addr().expect("address");
        let listener = HttpListener::new(tcp, NonZeroU32::MIN);
        let router = axum::Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    "slow"
                }),
            );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::serve_http("test", listener, router, async {
            let _ = stopped.await;
        }));
        (address, stop, server)
    }

    async fn send(stream: &mut TcpStream, path: &str) {
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
            .await
            .expect("request sent");
    }

    /// The answer to the request sent last, read within `within`.
    async fn answer(stream: &mut TcpStream, within: Duration) -> String {
        let mut answer = vec![0; 512];
        let read = tokio::time::timeout(within, stream.read(&mut answer))
            .await
            .expect("answered in time")
            .expect("answer read");
        String::from_utf8_lossy(&answer[..read]).to_lowercase()
    }

    /// Reads `stream` to its end (or a reset) within `within`: the service closed it.
    async fn closed(stream: &mut TcpStream, within: Duration) {
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(within, stream.read_to_end(&mut rest))
            .await
            .expect("the connection was closed");
    }

    #[tokio::test]
    async fn a_full_listener_closes_its_oldest_idle_connection_for_a_new_one() {
        let (address, stop, server) = server_of_one().await;
        let mut idle = TcpStream::connect(address).await.expect("connect");
        send(&mut idle, "/").await;
        let first = answer(&mut idle, Duration::from_secs(2)).await;
        assert!(first.starts_with("http/1.1 200"), "{first:?}");

        // The idle client keeps its connection; the only slot is taken from it (well before
        // the 30 s head timeout would), and the new connection is served.
        let mut new = TcpStream::connect(address).await.expect("connect");
        send(&mut new, "/").await;
        let served = answer(&mut new, Duration::from_secs(2)).await;
        assert!(served.starts_with("http/1.1 200"), "{served}");
        closed(&mut idle, Duration::from_secs(1)).await;

        drop(new);
        let _ = stop.send(());
        server.await.expect("server task");
    }

    #[tokio::test]
    async fn a_busy_oldest_connection_answers_its_request_before_it_closes() {
        let (address, stop, server) = server_of_one().await;
        let mut busy = TcpStream::connect(address).await.expect("connect");
        send(&mut busy, "/slow").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut waiting = TcpStream::connect(address).await.expect("connect");
        send(&mut waiting, "/").await;

        let slow = answer(&mut busy, Duration::from_secs(2)).await;
        assert!(slow.starts_with("http/1.1 200"), "{slow}");
        assert!(slow.contains("connection: close"), "{slow}");
        assert!(slow.ends_with("slow"), "{slow}");
        closed(&mut busy, Duration::from_secs(1)).await;
        let served = answer(&mut waiting, Duration::from_secs(2)).await;
        assert!(served.starts_with("http/1.1 200"), "{served}");

        drop(waiting);
        let _ = stop.send(());
        server.await.expect("server task");
    }
}
