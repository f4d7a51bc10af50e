#![recursion_limit = "256"]
//! berth's Docker Engine API service (`berth system service`): Docker's
//! REST API on a unix socket (or TCP with TLS and client certificates),
//! each request translated into the engine's
//! calls, the same ones the CLI makes, so a container made through the API
//! and one made by `berth run` are the same thing.
//!
//! The only crate with an async runtime (tokio, one thread for the
//! connections; engine calls, which block, run on tokio's blocking
//! threads). The engine starts monitors and runtimes with
//! `std::process::Command` without `pre_exec` (posix_spawn: vfork
//! semantics, no copy of this multi-threaded process), and never changes
//! the calling thread's namespaces, so nothing leaks into a worker.
//!
//! One file per resource: `system` (ping, version, info), `containers`,
//! `images`, `volumes`, `networks`, `events`; `http` the plumbing, `server` the listener
//! (unix, or TCP through rustls with the ring provider). Apart from the
//! service, `probe`: the client side of HTTPS and gRPC health probes, run
//! as the short-lived helper process `berth container probe` by a
//! container's monitor (which links neither TLS nor HTTP/2).

pub mod archive;
pub mod auth;
pub mod build;
pub mod container_fs;
pub mod containers;
pub mod createbody;
pub mod error;
pub mod events;
pub mod exec;
pub mod http;
pub mod images;
pub mod networks;
pub mod probe;
pub mod router;
pub mod server;
pub mod stats;
pub mod system;
pub mod volumes;

pub use error::{ApiError, ApiResult};
pub use server::{serve, Config, Listen, ServeError, TlsFiles};

/// The API version served, and the oldest a client may ask for.
pub const API_VERSION: &str = "1.41";
pub const MIN_API_VERSION: &str = "1.24";
