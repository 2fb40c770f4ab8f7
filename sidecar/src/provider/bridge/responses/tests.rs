//! Unit tests of the Responses bridge.
