//! Measurement: what happened to the bids precis made. The [`recorder`] turns the exchange's and
//! the advertiser's notices (win, impression, click, conversion) into lines of the event log and
//! feeds what they teach back into the book, remembering what it logged ([`seen`]) so that each
//! counts once; [`checkpoint`] keeps what the log taught in the state snapshot and replays the log
//! written after it at start; [`report`] adds the log up for people, and [`exposure`] counts its
//! users by how often they saw an ad (reach and frequency).
//!
//! The recorder never waits for disk (the log's writer thread does); reports never run in the
//! bidder.

pub mod checkpoint;
pub mod exposure;
pub mod recorder;
pub mod report;
pub mod seen;
