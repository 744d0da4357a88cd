//! The domain of the remediation-plan tracker for Kế hoạch 63/KH-UBND (Thanh Hóa, 2025).
//!
//! Pure: no IO, no async, no clock. Each aggregate is a decider — `decide(state, command,
//! context) -> events | rejection` and `evolve(state, event) -> state` over plain data — so the
//! command side and any time-travel query fold history with the very same functions.

pub mod access;
pub mod actor;
pub mod calendar;
pub mod command;
pub mod context;
pub mod event;
pub mod facts;
pub mod group;
pub mod item;
pub mod ledger;
pub mod lifecycle;
pub mod plan;
pub mod principal;
pub mod quarantine;
pub mod rejection;
pub mod report;
pub mod seed;
pub mod task;
pub mod text;
pub mod unit;

pub use actor::{Actor, Role};
pub use command::{COMMANDS, Command, CommandSpec};
pub use context::Context;
pub use event::{AggregateState, CURRENT_VERSION, DecodeError, Event};
pub use facts::{AggregateRef, Assignee, Facts};
pub use lifecycle::Lifecycle;
pub use principal::{Decision, Principal, PrincipalError};
pub use rejection::{Rejection, Rule};
