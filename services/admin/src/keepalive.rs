//! The closed loops' HTTP client: one keep-alive HTTP/1.1 connection per loop, on hyper's
//! connection API.
//!
//! Why not reqwest, which the rest of the tool uses: the benchmark divides the service's rate by
//! raw JetStream publishes made with async-nats, a lean client, and the load generator shares the
//! machine's two cores with the service. reqwest puts a connection pool, a URL parse and a header
//! map per request around hyper; over the HTTP half of a 32-client run it spent 30–37 µs of CPU per
//! command against 15.6 µs for the raw publisher (`perf stat` per process), and that time came out
//! of the service's measured rate. A closed loop waits for each answer before it sends the next
//! command, so one connection of its own is all it needs: no pool, no lock anyone else takes.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::http::uri::Scheme;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum KeepAliveError {
    #[error("{0:?} is not a base URL of the form http://host:port")]
    Url(String),
    #[error("bad header value: {0}")]
    Header(#[from] hyper::header::InvalidHeaderValue),
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error(transparent)]
    Request(#[from] hyper::http::Error),
}

/// One connection per closed loop, each opened when its loop first sends and again whenever the
/// service has closed it.
#[derive(Debug)]
pub struct Connections {
    /// `host:port`, as connected to and sent in `Host`.
    authority: String,
    host: HeaderValue,
    bearer: HeaderValue,
    slots: Vec<Mutex<Option<SendRequest<Full<Bytes>>>>>,
}

impl Connections {
    /// Connections for `loops` loops to the service at `url` (`http://host:port`, no path), each
    /// request signed with `token`.
    pub fn new(url: &str, token: &str, loops: usize) -> Result<Self, KeepAliveError> {
        let not_a_base = || KeepAliveError::Url(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| not_a_base())?;
        let authority = match (uri.scheme(), uri.authority(), uri.path_and_query()) {
            (Some(scheme), Some(authority), path)
                if *scheme == Scheme::HTTP && path.is_none_or(|p| p.as_str() == "/") =>
            {
                authority.to_string()
            }
            _ => return Err(not_a_base()),
        };
        Ok(Self {
            host: HeaderValue::from_str(&authority)?,
            bearer: HeaderValue::from_str(&format!("Bearer {token}"))?,
            authority,
            slots: (0..loops).map(|_| Mutex::new(None)).collect(),
        })
    }

    /// POSTs the JSON `body` to `path` on loop `slot`'s connection and returns the answer's status
    /// and body. A request the connection could not take (the service closed it while idle) is
    /// sent again on a new one; a request that went out is never sent twice.
    ///
    /// # Panics
    ///
    /// When `slot` is not below the number of loops given to [`Self::new`].
    pub async fn post(
        &self,
        slot: usize,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), KeepAliveError> {
        let mut connection = self.slots[slot].lock().await;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.bearer.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(body))?;
        // One more try, on a connection just opened: a service that keeps closing them ends in an
        // error rather than a loop.
        let mut retried = false;
        loop {
            let sender = match connection.as_mut() {
                Some(sender) if !sender.is_closed() => sender,
                _ => connection.insert(self.connect().await?),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let status = response.status();
                    let body = response.into_body().collect().await?.to_bytes();
                    return Ok((status, body));
                }
                Err(mut refused) => {
                    *connection = None;
                    match refused.take_message() {
                        // Never written: the connection had closed under it.
                        Some(unsent) if !retried => {
                            request = unsent;
                            retried = true;
                        }
                        _ => return Err(refused.into_error().into()),
                    }
                }
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, KeepAliveError> {
        let connect_error = |source| KeepAliveError::Connect {
            address: self.authority.clone(),
            source,
        };
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(connect_error)?;
        stream.set_nodelay(true).map_err(connect_error)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        // The connection's error, if any, is also the error of the request it was serving.
        tokio::spawn(connection);
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that reads one request per connection, counts it, and answers `answer` (if any)
    /// before closing the connection.
    async fn one_request_per_connection(
        answer: Option<&'static str>,
    ) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut read = Vec::new();
                let mut chunk = [0u8; 1024];
                // The whole request: its head, then the two-byte body the tests send.
                while !read.windows(4).any(|w| w == b"\r\n\r\n") || !read.ends_with(b"{}") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => read.extend_from_slice(&chunk[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                if let Some(answer) = answer {
                    let _ = stream.write_all(answer.as_bytes()).await;
                }
            }
        });
        (url, requests)
    }

    #[tokio::test]
    async fn a_connection_the_service_closed_is_opened_again() {
        let (url, requests) = one_request_per_connection(Some(
            "HTTP/1.1 201 Created\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
        ))
        .await;
        let connections = Connections::new(&url, "token", 1).expect("connections");
        for sent in 1..=3 {
            let (status, body) = connections
                .post(0, "/v1/commands/x", Bytes::from_static(b"{}"))
                .await
                .expect("answered");
            assert_eq!((status, &body[..]), (StatusCode::CREATED, &b"{}"[..]));
            assert_eq!(requests.load(Ordering::SeqCst), sent);
        }
    }

    #[tokio::test]
    async fn a_request_that_went_out_is_not_sent_again() {
        let (url, requests) = one_request_per_connection(None).await;
        let connections = Connections::new(&url, "token", 1).expect("connections");
        let answer = connections
            .post(0, "/v1/commands/x", Bytes::from_static(b"{}"))
            .await;
        assert!(matches!(answer, Err(KeepAliveError::Http(_))), "{answer:?}");
        assert_eq!(requests.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn only_a_plain_base_url_is_taken() {
        for url in ["http://127.0.0.1:8080", "http://127.0.0.1:8080/"] {
            assert!(Connections::new(url, "t", 1).is_ok(), "{url}");
        }
        for url in [
            "https://127.0.0.1:8080",
            "http://127.0.0.1:8080/v1",
            "http://",
            "127.0.0.1",
        ] {
            assert!(
                matches!(Connections::new(url, "t", 1), Err(KeepAliveError::Url(_))),
                "{url}"
            );
        }
    }
}
