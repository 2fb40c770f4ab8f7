//! Routing: deployment state, selection strategies, retry rules, the dispatcher that
//! ties them together, the gate it asks before spending on a model, and the stream
//! relay.

pub mod count;
pub mod dispatch;
pub mod gate;
pub mod params;
pub mod relay;
pub mod retry;
pub mod routes;
pub mod state;
pub mod strategy;

pub use routes::{Routes, RoutesBuilder};
