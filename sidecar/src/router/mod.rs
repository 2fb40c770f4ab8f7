//! Routing: deployment state, selection strategies, retry rules, the dispatcher that
//! ties them together, the gate it asks before spending on a model, the image URLs it
//! fetches for providers that take only bytes, and the stream relay.

pub mod count;
pub mod dispatch;
pub mod gate;
pub mod images;
pub mod params;
pub mod relay;
pub mod retry;
pub mod routes;
pub mod state;
pub mod strategy;

pub use routes::{Routes, RoutesBuilder};
