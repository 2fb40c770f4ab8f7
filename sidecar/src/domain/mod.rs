//! The request path's own vocabulary, at the bottom of the sidecar: the call a client
//! made ([`Call`]), the API operation ([`Endpoint`]), the tokens it used ([`Usage`]),
//! what an upstream answered ([`Reply`]) or how it failed ([`UpstreamError`]), and the
//! error a client is told ([`ApiError`]).
//!
//! Server, router, provider, meter and upstream all import this module; it imports
//! none of them. Rendering an error in a client's API shape is the server's job.

mod call;
mod endpoint;
mod error;
mod usage;

pub use call::{Call, CallView, Reply};
pub use endpoint::{Api, Endpoint};
pub use error::{ApiError, ErrorClass, ErrorKind, UpstreamError};
pub use usage::Usage;
