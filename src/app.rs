//! The application: the state every request reads, one owner for each piece. The book of
//! campaigns with what events taught it ([`Store`]), the recorder of events ([`Recorder`]), the
//! profile store and its bulk files, the clock, where precis' own URLs point, the auction's no-bid
//! counts and the TCF vendor id requests are read for ([`App::facts`]); and forgetting a user on
//! request ([`App::forget`]).
//!
//! Built once by [`crate::bidder::Bidder::start`] and shared by the HTTP routes and the
//! background tasks; it holds no HTTP and no tasks of its own. Its methods never wait on disk or
//! the network: what walks maps ([`App::expire`]) runs off the request threads.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::auction::{Env, NoBids, Urls};
use crate::audience::profiles::Profiles;
use crate::audience::profiles::bulk::Feed;
use crate::book::store::{Snapshot, Store};
use crate::clock::Clock;
use crate::measure::recorder::Recorder;
use crate::metrics::Exposition;
use crate::request::facts::Facts;
use crate::request::openrtb::BidRequest;
use crate::request::user::UserId;

pub struct App {
    /// The campaigns being served, and what events taught about them.
    pub store: Arc<Store>,
    /// Turns event notices into the log and feeds the store; signs and checks event tokens.
    pub recorder: Arc<Recorder>,
    /// What precis knows of users: their tags join their requests' own.
    pub profiles: Arc<Profiles>,
    /// The bulk profile files that feed `profiles`.
    pub profile_files: Arc<Feed>,
    pub clock: Arc<Clock>,
    /// Where win, billing and click URLs point.
    pub urls: Urls,
    /// Imps the auction answered without a bid, by reason.
    pub no_bids: NoBids,
    /// precis' TCF vendor id (`[privacy] vendor_id`): whose consent a GDPR request must give.
    pub vendor_id: Option<u32>,
}

impl App {
    /// What an auction on `snapshot` reads besides the campaigns and the request.
    pub fn env<'a>(&'a self, snapshot: &'a Snapshot) -> Env<'a> {
        Env {
            rates: self.store.rates(),
            urls: &self.urls,
            keys: self.recorder.keys(),
            pacer: self.store.pacer(),
            exposures: self.store.exposures(),
            audiences: &snapshot.audiences,
            no_bids: &self.no_bids,
        }
    }

    /// The facts of `request` at `now`, as this bidder may read them (privacy signals applied),
    /// with the profile store's tags for the user.
    pub fn facts(&self, request: &BidRequest, now: DateTime<Utc>) -> Facts {
        let mut facts = Facts::from_request_as(request, now, self.vendor_id);
        self.profiles.enrich(&mut facts);
        facts
    }

    /// Forgets the user whose raw key (`user.id`, `buyeruid` or `ifa`) is `key`: their profile
    /// tags, frequency counts and conversion memory (a deletion request). The snapshots written
    /// next no longer hold them. Returns whether each held anything: `(tags, exposures)`.
    pub fn forget(&self, key: &str) -> (bool, bool) {
        let tags = self.profiles.remove(UserId::of_key(key), None);
        let exposures = (self.store.exposures()).forget(self.recorder.keys().user_hash(key));
        (tags, exposures)
    }

    /// Forgets what time has expired as of `now`: events whose tokens can no longer arrive, budget
    /// reservations no win claimed, frequency windows that are over, profile tags past their ttl.
    /// Walks maps: off the request path (the sweeper, and `/admin/clock` after it moves a
    /// simulated clock).
    pub fn expire(&self, now: DateTime<Utc>) {
        self.recorder.sweep(now);
        self.store.expire(now);
        self.profiles.sweep(now);
    }

    /// The metrics of the store, the recorder, the profile store and the auction's no-bids;
    /// with `per_campaign`, each live campaign's too.
    pub fn report(&self, out: &mut Exposition, per_campaign: bool) {
        self.store.report(out, per_campaign);
        self.no_bids.report(out);
        self.recorder.report(out);
        self.profiles.report(out);
    }
}
