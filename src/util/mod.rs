//! The bottom layer: small primitives every stage shares and that know nothing of events —
//! retry backoff, stable hashing, human units for durations and sizes, and a map keyed by
//! joined strings. Nothing here imports another module of the crate.

pub mod backoff;
pub mod hash;
pub mod joined;
pub mod units;
