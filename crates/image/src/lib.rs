//! berth's images: references, a registry client (OCI distribution spec),
//! a content-addressed store with its metadata in SQLite, and safe,
//! streaming layer unpacking into overlay lower directories.

pub mod archive;
pub mod commit;
pub mod digest;
pub mod error;
pub mod fetch;
pub mod layer;
pub mod manifest;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registries;
pub mod registry;
pub mod store;
pub mod tar;
pub mod unpack;

pub use digest::Digest;
pub use error::{Error, Result};
pub use reference::Reference;
pub use store::remove_tree as remove_all;
