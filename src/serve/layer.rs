//! What every route reads besides the application: the HTTP layer's settings, gates and
//! counters, set up once by [`super::serve`] and shared by its connections.

use std::sync::Arc;

use hyper::Method;

use super::admission::Gate;
use super::metrics::ServeMetrics;
use crate::config::{Limits, NoBidAnswer};

pub(super) struct Http {
    pub metrics: Arc<ServeMetrics>,
    pub limits: Limits,
    /// When set, every admin request must carry `Authorization: Bearer TOKEN`.
    pub admin_token: Option<Box<str>>,
    /// The body limit of the profile API.
    pub max_batch_bytes: usize,
    /// Bid requests being read or bid on.
    pub in_flight: Arc<Gate>,
    /// How a bid request without a bid is answered.
    pub no_bid: NoBidAnswer,
    /// The `Host` values the admin port answers to (lower case): its address, `localhost` when it
    /// is loopback, and `admin_host`. A page on another name (DNS rebinding) gets 403.
    pub admin_hosts: Vec<String>,
}

/// A request a router does not serve: its method and path, for the routes both ports share.
pub(super) type Unrouted = (Method, String);
