//! The book: the campaigns precis is serving and the state that prices and paces them.
//!
//! [`store`] reads the campaign directory (with its taxonomy and the audience packages) into an
//! immutable snapshot swapped in whole, [`watch`] says when to read it again, [`ranking`] puts the
//! live campaigns in auction order at their current prices and [`index`] finds a request's
//! candidates among them. What events teach is kept here too, read by the auction and written by
//! the recorder: [`learning`] (click and conversion rates), [`pacing`] (spend, reservations, even
//! pacing) and [`frequency`] (what each user has seen). The request path only reads a snapshot and
//! takes the few atomics and short shard locks pacing and frequency need; everything that reads a
//! file or sorts every campaign runs off it.

pub mod frequency;
pub mod index;
pub mod learning;
pub mod pacing;
pub mod ranking;
pub mod store;
pub mod watch;
