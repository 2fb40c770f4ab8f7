//! Config: the snapshot wire format, its conversion into the routing table the data
//! path reads, and the snapshot-file source.

pub mod file;
pub mod link;
pub mod operator;
pub mod push;
pub mod routes;
pub mod snapshot;
pub mod trust;

pub use routes::{Routes, RoutesBuilder};
pub use snapshot::Snapshot;
