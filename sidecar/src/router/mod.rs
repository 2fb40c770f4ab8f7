//! Routing: deployment state, selection strategies, retry rules, the dispatcher that
//! ties them together, and the stream relay.

pub mod dispatch;
pub mod relay;
pub mod retry;
pub mod state;
pub mod strategy;
