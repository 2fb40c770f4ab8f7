//! Config: the snapshot wire format and where snapshots come from (a file, or the
//! operator's push stream). The routing table built from a snapshot lives in
//! [`crate::router::routes`].

pub mod file;
pub mod link;
pub mod operator;
pub mod push;
pub mod snapshot;
pub mod trust;

pub use snapshot::Snapshot;
