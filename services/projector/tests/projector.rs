//! The projector against real NATS and PostgreSQL. Every test starts its own nats-server and
//! creates its own database, so tests run in parallel and repeatedly.
//!
//! - `views`: the exact rows of every view after a scripted history sent over HTTP;
//! - `compliance`: on time / late / missing at the local-time edges of the reporting calendar;
//! - `crash`: `kill -9` while catching up on 50 000 commits, restart, equal to a rebuild;
//! - `standby`: two projector processes, one applies, the other takes over when it is killed;
//! - `redelivery`: redelivered, overlapping, gapped and undecodable batches;
//! - `pipeline`: the next batch is fetched while one is applied, and applied only after it;
//! - `went_back`: a read model put back to an earlier checkpoint is brought forward by itself;
//! - `stall`: a stalled projection shows on `/readyz` and `/metrics`;
//! - `rebuild`: rebuild and swap while queries run and commands keep arriving;
//! - `snapshots`: the running projector keeps the time-travel snapshots fresh;
//! - `decoding`: each commit is decoded and hashed once for both projections;
//! - `regressions`: each test fails on the defect it names (projection defects, a stop recorded
//!   for the query service, NATS permissions);
//! - `quarantine`: a message that breaks the record stays a stop until an auditor's quarantine
//!   decision for exactly that message; then everything continues, rebuilds included.

#[path = "projector/harness.rs"]
mod harness;

#[path = "projector/views.rs"]
mod views;

#[path = "projector/compliance.rs"]
mod compliance;

#[path = "projector/redelivery.rs"]
mod redelivery;

#[path = "projector/pipeline.rs"]
mod pipeline;

#[path = "projector/went_back.rs"]
mod went_back;

#[path = "projector/stall.rs"]
mod stall;

#[path = "projector/crash.rs"]
mod crash;

#[path = "projector/standby.rs"]
mod standby;

#[path = "projector/rebuild.rs"]
mod rebuild;

#[path = "projector/snapshots.rs"]
mod snapshots;

#[path = "projector/decoding.rs"]
mod decoding;

#[path = "projector/quarantine.rs"]
mod quarantine;

#[path = "projector/regressions/mod.rs"]
mod regressions;
