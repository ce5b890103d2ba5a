//! The bottom layer: small primitives every stage shares and that know nothing of events —
//! retry backoff, stable hashing, human units for durations and sizes, a map keyed by
//! joined strings, and the TLS crypto provider. Nothing here imports another module of the crate.

pub mod backoff;
pub mod hash;
pub mod joined;
pub mod tls;
pub mod units;
