//! Config: the snapshot wire format and its conversion into the routing table the data
//! path reads.

pub mod snapshot;

pub use snapshot::Snapshot;
