//! Unit tests of the Cohere translation.
