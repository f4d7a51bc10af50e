//! berth's DNS responder for bridge networks: the configuration the engine
//! writes ([`config`]), the server ([`server`]), and how the engine starts,
//! reloads and stops it ([`control`]).

pub mod config;
pub mod control;
pub mod server;
