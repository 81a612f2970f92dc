//! precis: a real-time OpenRTB bidder that serves campaigns from a folder of TOML files.
//!
//! The folders follow a bid request through the bidder, and its events back into pricing:
//!
//! ```text
//! HTTP ─ serve ─ request: openrtb::decode ─ facts ─┐
//!                                                   auction: candidates (book::index)
//!  campaigns/ ─ campaign::file ─ book::store ──────►  ─ price (book::ranking)
//!  audiences/ ─ audience ─────────────────────────►   ─ pace, cap (book::pacing, frequency)
//!                                                     ─ response ─ HTTP
//!
//! HTTP /win /imp /click /conv ─ measure::recorder ─ eventlog ─ measure::report
//!                                     └─ feedback: book::learning, pacing, frequency
//! ```
//!
//! Each layer uses only those below it (`tests/layout.rs` holds the code to that), from the leaves
//! up:
//! - leaves: [`clock`] (the system's or a simulated time; local days), [`forms`] (the compared
//!   forms of ids, tags, categories, hosts), [`diagnostic`] (`path:line:col` problems in files
//!   people edit), [`files`] (listing a directory, replacing a file whole), [`token`] (signed event URLs), [`config`]
//!   (precis.toml and its flags);
//! - [`request`]: what an exchange sends, decoded and normalised into the facts campaigns target;
//! - [`audience`]: who users are: packages campaigns target, profiles (precis' own tags per user),
//!   and the packages precis builds (retargeting from the log, lookalikes from profiles);
//! - [`campaign`]: what a campaign file compiles to: targeting, pricing, creatives, the taxonomy;
//! - [`eventlog`]: the event record and the append-only log of it;
//! - [`book`]: the campaigns being served (store, watcher, ranking, index) and the state events
//!   feed back (learning, pacing, frequency);
//! - [`auction`]: each imp's winner and the bid response;
//! - [`measure`]: the recorder of wins, impressions, clicks and orders, and reports;
//! - [`serve`]: HTTP on two ports (exchanges', operators'), per-core runtimes, limits;
//! - [`metrics`]; [`generate`]: the campaign files and taxonomy the `precis-generate` crate draws
//!   from a seed, compiled and written (`precis gen-campaigns`).

pub mod app;
pub mod auction;
pub mod audience;
pub mod bidder;
pub mod book;
pub mod campaign;
pub mod clock;
pub mod config;
pub mod diagnostic;
pub mod eventlog;
pub mod files;
pub mod forms;
pub mod generate;
pub mod measure;
pub mod metrics;
pub mod request;
pub mod serve;
pub mod token;
