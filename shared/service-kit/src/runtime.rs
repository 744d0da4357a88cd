//! How every service logs and stops, and how a process reports the error it ends on.

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

/// Binds the service's HTTP address.
pub async fn listen(address: std::net::SocketAddr) -> Result<tokio::net::TcpListener, ListenError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| ListenError { address, source })
}

/// Serves `router` on `listener` until `shutdown` resolves; requests already taken are answered
/// in full before it returns, so a service closes its pools and flushes NATS only after them.
pub async fn serve_http(
    service: &'static str,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "{service} listening");
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
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
