//! What the engine and `berth-monitor` share: the monitor's configuration
//! file, its state file, and the framing of the attach stream.
//!
//! All three are small line or byte formats parsed by hand, so the monitor
//! needs no serialisation crate (its resident size is a product goal).
//!
//! A crate of its own, not the monitor package's library: the engine and the
//! `berth` CLI link it, and they must not link berth-runtime, which the
//! monitor's binary uses (crates/conformance/tests/project.rs checks this).

pub mod config;
pub mod frame;
pub mod health;
pub mod logfmt;
pub mod state;

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
