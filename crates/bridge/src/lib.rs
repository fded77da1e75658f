//! The bridge as a library: the `dbbridge` binary's command line is built on
//! it, and so is the Tauri plugin, which runs the same state and router in
//! its app's process through [`embed`]. Only `embed` is meant for embedding;
//! the other public modules are public for the binary.

mod catalog;
mod client;
mod connections;
pub mod demo;
pub mod embed;
mod errors;
#[doc(hidden)]
pub mod fuzz;
pub mod handlers;
mod health;
mod ids;
mod jobs;
pub mod logging;
pub mod parent;
mod query;
pub mod redact;
mod router;
mod rpc;
pub mod secrets;
pub mod server;
mod session;
pub mod shutdown;
pub mod state;
pub mod transport;
