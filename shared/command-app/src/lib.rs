//! The command application: claims the Idempotency-Key, loads the aggregate and the facts the
//! decision needs, decides with the domain, appends, and remembers the outcome. It answers in
//! typed outcomes ([`outcome`]) and knows nothing of HTTP: the command service maps them to
//! statuses and problem documents at its edge, and the admin CLI (seed, quarantine) and the query
//! service (recorded reads of the audit trail) decide through it as well.

mod claim;
pub mod handler;
pub mod idempotency;
pub mod metrics;
pub mod outcome;
pub mod quarantine;
pub mod seed;
mod writers;
