//! The request: what an exchange sends, decoded ([`openrtb`]) and normalised into the facts
//! campaigns target ([`facts`]), with the places ([`geo`]) and the user ([`user`]) in one form,
//! and whether its privacy signals allow personal data at all ([`privacy`]).
//!
//! The bottom of the bid path: nothing here knows about campaigns, state or HTTP, allocates per
//! campaign, or fails on anything but a body that is not a bid request.

pub mod facts;
pub mod geo;
pub mod openrtb;
pub mod privacy;
pub mod user;
