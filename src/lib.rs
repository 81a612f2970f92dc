//! precis: a real-time OpenRTB bidder that serves campaigns from a folder of TOML files.
//!
//! The modules follow a bid request through the bidder, and its events back into pricing:
//!
//! ```text
//! bytes ─ openrtb::decode ─ targeting::Facts ─ auction::run ─┬─ targeting (who/where/when/what)
//!                                                             ├─ pricing (eCPM, currency)
//!                                                             ├─ frequency (per-user caps)
//!                                                             ├─ pacing (budgets, even spend)
//!                                                             ├─ token (signed event URLs)
//!                                                             └─ openrtb::response ─ bytes
//! campaigns/*.toml ─ campaign::parse ─ reload::Store (arc-swap) ─ auction::rank, index ─┘
//!
//! /win /imp /click /conv ─ events::Recorder ─ eventlog (JSON Lines) ─ report (precis report)
//!                                 ├─ learning (CTR/CVR) ─ reload::Store::reprice ─ auction
//!                                 ├─ pacing (spend settles reservations)
//!                                 └─ frequency (impressions, conversions)
//! ```
//!
//! Around that path:
//! - serving: `server` wires the routes to HTTP on two ports (exchanges', operators'); `http` runs
//!   exchange connections on one runtime per core; `admission` bounds what the server takes on
//!   (connections, requests in flight, `tmax` deadlines); `encoding` undoes compressed bodies.
//! - who the user is: `user` turns the request's user key into the id packages and profiles are
//!   keyed by; `audience` holds the packages campaigns target and exclude (checked on the index's
//!   candidates) and builds retargeting packages from the log; `profiles` is precis' own tags per
//!   user (bulk files and the admin API, merged into each request's tags, kept by a snapshot);
//!   `lookalike` grows a package from profiles; `taxonomy` is the tag tree campaign tags must be in.
//! - the operator's: `config` (precis.toml and its flags) and `metrics`; `durable` replaces files
//!   whole (holds, snapshots, packages); `clock` says what time it is (the system's, or a simulated
//!   day's) and where local days begin; `geo` normalises places; `generate` compiles and writes
//!   the campaign files the `precis-generate` crate makes from a seed (`precis gen-campaigns`).

pub mod admission;
pub mod auction;
pub mod audience;
pub mod campaign;
pub mod clock;
pub mod config;
pub mod durable;
pub mod encoding;
pub mod eventlog;
pub mod events;
pub mod frequency;
pub mod generate;
pub mod geo;
pub mod http;
pub mod index;
pub mod learning;
pub mod lookalike;
pub mod metrics;
pub mod openrtb;
pub mod pacing;
pub mod pricing;
pub mod profiles;
pub mod reload;
pub mod report;
pub mod server;
pub mod targeting;
pub mod taxonomy;
pub mod token;
pub mod user;
