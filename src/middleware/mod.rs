//! Middleware around every route, mounted by [`crate::startup`], outermost first:
//! [`request_context`] (request id, error shape, metrics), then [`forward_proxied`] (the proxy's
//! prefixes, before the router), then the router with [`fallback`] for what no route takes.

mod forward;
mod request_context;

pub use forward::{fallback, forward_proxied};
pub use request_context::request_context;
