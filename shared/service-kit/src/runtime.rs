//! How every service logs, serves and stops, and how a process reports the error it ends on.

use crate::listener::HttpListener;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight work");
}

/// Logs as JSON when `LOG_FORMAT=json`, else human-readable; `RUST_LOG` filters.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr so that a CLI's results on stdout stay clean; colour only on a terminal.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// An address a service could not listen on.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address}: {source}")]
pub struct ListenError {
    pub address: std::net::SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Connections the kernel completes and queues for the service before it refuses more: tokio's
/// `TcpListener::bind` asks for 128, as the standard library does. With every slot of the
/// listener taken, a connection past the queue has its handshake dropped and the client's kernel
/// retries it after 1, 3, 7 s…; a queued one waits only until a recycled connection frees a slot,
/// at no cost to the service's memory. Linux caps it at `net.core.somaxconn` (4 096 by default).
const ACCEPT_QUEUE: u32 = 1024;

/// Binds the service's HTTP address, to hold at most `max_connections` connections at once.
pub fn listen(
    address: std::net::SocketAddr,
    max_connections: std::num::NonZeroU32,
) -> Result<HttpListener, ListenError> {
    let bind = || {
        let socket = if address.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }?;
        // As tokio's own bind: a restarted service need not wait out the old socket's TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(address)?;
        socket.listen(ACCEPT_QUEUE)
    };
    bind()
        .map(|tcp| HttpListener::new(tcp, max_connections))
        .map_err(|source| ListenError { address, source })
}

/// How long a connection may take to send a request's head, counted from the moment it waits for
/// one (so also how long it may stay idle between requests): hyper's own default, which takes
/// effect only with a timer, and axum's server sets none. A connection that trickles a header
/// byte by byte would otherwise hold its slot for good.
const HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves `router` over HTTP/1.1 on `listener` until `shutdown` resolves; requests already taken
/// are answered in full before it returns, so a service closes its pools and flushes NATS only
/// after them.
pub async fn serve_http(
    service: &'static str,
    mut listener: HttpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "{service} listening");
    }
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote, slot) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let serving = http.serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(router.clone()),
        );
        tokio::spawn(async move {
            let mut serving = std::pin::pin!(serving);
            let ended = tokio::select! {
                ended = serving.as_mut() => ended,
                // Answers the request in hand, if any, with `Connection: close`, then closes.
                () = slot.close_requested() => {
                    serving.as_mut().graceful_shutdown();
                    serving.await
                }
            };
            // A client that hangs up, sends garbage or stays silent ends its own connection;
            // the service has nothing to do about it.
            if let Err(error) = ended {
                tracing::debug!(%remote, %error, "connection ended");
            }
            drop(slot);
        });
    }
    // No new connections from here; each open one finishes the request it has, then closes.
    listener.close().await;
}

/// An error and its causes on one line, for a process's last words. Most errors here already
/// carry their cause's text in their own, so a cause whose text is already there is not repeated.
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut line = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let text = error.to_string();
            if !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            cause = error.source();
        }
        f.write_str(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorChain;

    /// More connections than tokio's default queue of 128 complete their handshake while the
    /// service takes none up: they wait in the kernel's queue, not in the clients' retries.
    #[tokio::test]
    async fn the_kernel_queues_more_connections_than_tokio_would() {
        let address = "127.0.0.1:0".parse().expect("address");
        let listener = super::listen(address, std::num::NonZeroU32::MIN).expect("listen");
        let address = listener.local_addr().expect("address");
        let mut connects = tokio::task::JoinSet::new();
        for _ in 0..300 {
            connects.spawn(tokio::time::timeout(
                std::time::Duration::from_millis(800),
                tokio::net::TcpStream::connect(address),
            ));
        }
        // Held until counted: a stream dropped early would free its place in the queue.
        let connected = connects
            .join_all()
            .await
            .into_iter()
            .filter(|connect| matches!(connect, Ok(Ok(_))))
            .count();
        assert_eq!(connected, 300, "handshakes completed without an accept");
        drop(listener);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("disk full")]
    struct Root;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write out.csv")]
    struct Terse(#[source] Root);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write out.csv: {0}")]
    struct Telling(#[source] Root);

    #[derive(Debug, thiserror::Error)]
    #[error("export failed")]
    struct Outer(#[source] Telling);

    #[test]
    fn causes_are_appended_once() {
        assert_eq!(
            ErrorChain(&Terse(Root)).to_string(),
            "cannot write out.csv: disk full"
        );
        assert_eq!(
            ErrorChain(&Telling(Root)).to_string(),
            "cannot write out.csv: disk full"
        );
        assert_eq!(
            ErrorChain(&Outer(Telling(Root))).to_string(),
            "export failed: cannot write out.csv: disk full"
        );
    }
}
