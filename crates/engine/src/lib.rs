//! berth's engine. So far: the container's OCI spec from the image config
//! and the `run` options (`spec`), and users and groups looked up in the
//! image (`user`). Records, the monitor and the runtime client come next.

pub mod error;
pub mod spec;
pub mod user;

pub use error::{Error, Result};
