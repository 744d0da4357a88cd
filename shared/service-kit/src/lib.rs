//! What every service of the tracker shares, so that no service depends on another's crate:
//! NATS login and opening the event store, settings from the environment, tracing, serving HTTP
//! and shutdown,
//! the metrics exposition, bearer tokens with the [`auth::Authenticated`] extractor, and the
//! problem+json error of the HTTP edge.

pub mod auth;
pub mod config;
mod listener;
pub mod metrics;
pub mod nats;
pub mod problem;
mod runtime;

pub use listener::{DEFAULT_MAX_CONNECTIONS, HttpListener};
pub use nats::{NatsError, connect_nats, open_store};
pub use runtime::{ErrorChain, ListenError, init_tracing, listen, serve_http, shutdown_signal};
