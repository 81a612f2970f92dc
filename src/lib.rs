//! precis: a real-time OpenRTB bidder that serves campaigns from a folder of TOML files.
//!
//! The folders follow a bid request through the bidder, and its events back into pricing:
//!
//! ```text
//!  exchange ─ serve ─ request: decode, facts ─ auction ─────────────── response ─ exchange
//!                                                │ candidates: book::index
//!                                                │ price:      book::ranking
//!                                                │ pace, cap:  book::pacing, book::frequency
//!  campaigns/, audiences/ ─ campaign, audience ─ book::store (one snapshot, swapped whole)
//!
//!  /win /imp /click /conv ─ serve ─ measure::recorder ─ eventlog ─ measure::report
//!                                       └─ feedback: book::learning, pacing, frequency
//! ```
//!
//! Each module uses only those after it in this list (`tests/layout.rs` holds the code to that,
//! and the Layout section of docs/development.md to the same order):
//! - [`bidder`]: the serving process: start, the named background tasks, shutdown, signals;
//! - [`generate`]: the generated world (the `precis-generate` crate) compiled and written;
//! - [`serve`]: HTTP on two ports (exchanges', operators'), per-core runtimes, limits;
//! - [`app`]: what every request reads, one owner each;
//! - [`config`]: `precis.toml` and the `serve` flags, each key declared once;
//! - [`measure`]: the recorder of wins, impressions, clicks and orders, and reports;
//! - [`auction`]: each imp's winner and the bid response;
//! - [`book`]: the campaigns being served (store, watcher, ranking, index) and the state events
//!   feed back (learning, pacing, frequency);
//! - [`campaign`]: what a campaign file compiles to: targeting, pricing, creatives, the taxonomy;
//! - [`audience`]: who users are: packages campaigns target, profiles (precis' own tags per user),
//!   and the packages precis builds (retargeting from the log, lookalikes from profiles);
//! - [`eventlog`]: the event record and the append-only log of it;
//! - [`request`]: what an exchange sends, decoded and normalised into the facts campaigns target;
//! - leaves: [`metrics`] (the text format every part reports through), [`token`] (signed event
//!   URLs), [`price`] (clearing prices as exchanges send them, encrypted ones too), [`clock`] (the system's or a simulated time; local days), [`forms`] (the compared forms
//!   of ids, tags, categories, hosts), [`diagnostic`] (`path:line:col` problems in files people
//!   edit), [`binary`] (the checksummed files precis writes for itself to read back), [`files`]
//!   (listing a directory, replacing a file whole, making a private one once).

pub mod app;
pub mod auction;
pub mod audience;
pub mod bidder;
pub mod binary;
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
pub mod price;
pub mod request;
pub mod serve;
pub mod token;
