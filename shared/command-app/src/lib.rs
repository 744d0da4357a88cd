//! The command application: claims the Idempotency-Key, loads the aggregate and the facts the
//! decision needs, decides with the domain, appends, and remembers the answer. It knows the
//! problem vocabulary of the edge ([`service_kit::problem::ApiError`]) but serves no HTTP; the
//! command service, the admin CLI (seed, quarantine) and the query service (recorded reads of the
//! audit trail) all decide through it.

mod claim;
pub mod handler;
pub mod idempotency;
pub mod metrics;
pub mod quarantine;
pub mod seed;
