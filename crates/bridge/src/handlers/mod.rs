//! The handlers of the contract's methods, one module per domain, and the
//! router that maps method names to them.

mod backup;
mod bridge;
mod connection;
mod debug;
mod export;
mod metadata;
mod query;
mod secret;
mod session;

use crate::router::Router;

/// The router of every implemented method; with `test_hooks`, also `debug.*`.
pub fn router(test_hooks: bool) -> Router {
    let mut router = Router::new();
    bridge::register(&mut router);
    backup::register(&mut router);
    export::register(&mut router);
    session::register(&mut router);
    query::register(&mut router);
    metadata::register(&mut router);
    secret::register(&mut router);
    connection::register(&mut router);
    if test_hooks {
        debug::register(&mut router);
    }
    router
}
