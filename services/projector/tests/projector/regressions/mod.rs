//! The regression suite: each test fails on the defect it names.
//!
//! - `stops`: a projection's stop is recorded next to its checkpoint for the query service, also
//!   when the database takes it late, and cleared once the projection runs again;
//! - `nats_permissions`: only the command service's key publishes events; each service may do
//!   only its own work on NATS;
//! - `projection`: defects of the projections found while writing the projector's tests (a stall
//!   that left earlier commits unapplied, constraints retried forever, re-membership on the same
//!   day, the checkpoint after a restart, compliance at an instant, invisible panics);
//! - `consumer`: a consumer that delivers nothing although the stream holds more is made anew;
//! - `lost_pull`: a pull request NATS leaves unanswered holds neither the stream reader nor the
//!   live worker for long.

mod consumer;
mod lost_pull;
mod nats_permissions;
mod projection;
mod stops;
