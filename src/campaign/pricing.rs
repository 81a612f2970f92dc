//! Pricing: what an impression is worth to a campaign (eCPM) and in which currency.
//!
//! Advertisers pay per impression (CPM), per click (CPC) or a commission on sales (CPS); the exchange
//! always charges per impression. Each model is converted here to the expected value of one thousand
//! impressions, capped at the campaign's `max_cpm`, which is what precis bids (first price).
//! Pure arithmetic on compiled values: never touches the request, a lock or the clock.

use std::collections::HashMap;
use std::fmt;

/// How the advertiser pays, with the priors needed to turn it into an eCPM.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// `cpm` per thousand impressions.
    Cpm { cpm: f64 },
    /// `cpc` per click, `ctr` clicks per impression.
    Cpc { cpc: f64, ctr: f64 },
    /// `commission` of an `order_value` order, `cvr` orders per click, `ctr` clicks per impression.
    Cps {
        commission: f64,
        order_value: f64,
        cvr: f64,
        ctr: f64,
    },
}

impl Model {
    /// Expected value of one thousand impressions, uncapped.
    pub fn ecpm(&self) -> f64 {
        match *self {
            Model::Cpm { cpm } => cpm,
            Model::Cpc { cpc, ctr } => cpc * ctr * 1000.0,
            Model::Cps {
                commission,
                order_value,
                cvr,
                ctr,
            } => commission * order_value * cvr * ctr * 1000.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pricing {
    pub model: Model,
    /// Never bid above this CPM.
    pub max_cpm: f64,
    pub currency: Currency,
    /// The largest order amount a conversion may report, as the file sets it (see
    /// [`Pricing::max_order_value`]).
    pub max_order_value: Option<f64>,
}

/// The default largest order a CPS campaign accepts, in `order_value`s.
pub const ORDER_VALUES_PER_ORDER: f64 = 100.0;

impl Pricing {
    /// The bid: the model's eCPM capped at `max_cpm`, in the campaign currency.
    pub fn ecpm(&self) -> f64 {
        self.model.ecpm().min(self.max_cpm)
    }

    /// The largest order amount a conversion may report, in the campaign currency: the file's
    /// `max_order_value`, else 100 × `order_value` for CPS, else `global` (the configured cap,
    /// already in the campaign currency).
    pub fn max_order_value(&self, global: f64) -> f64 {
        match (self.max_order_value, &self.model) {
            (Some(cap), _) => cap,
            (None, Model::Cps { order_value, .. }) => ORDER_VALUES_PER_ORDER * order_value,
            (None, _) => global,
        }
    }
}

/// An ISO-4217 currency code, upper case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    pub const USD: Currency = Currency(*b"USD");

    /// Three ASCII letters in any case; anything else is not a currency code.
    pub fn parse(text: &str) -> Option<Currency> {
        match text.trim().as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_alphabetic) => {
                Some(Currency([a, b, c].map(|x| x.to_ascii_uppercase())))
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Exchange rates, as units of each currency per one US dollar (the way FX tables are published).
#[derive(Debug, Clone)]
pub struct Rates {
    per_usd: HashMap<Currency, f64>,
}

impl Default for Rates {
    /// Only USD is known.
    fn default() -> Self {
        Rates {
            per_usd: HashMap::from([(Currency::USD, 1.0)]),
        }
    }
}

impl Rates {
    /// USD is always 1; each given rate must be finite and positive (checked by the config loader).
    pub fn new(per_usd: impl IntoIterator<Item = (Currency, f64)>) -> Rates {
        let mut rates = Rates::default();
        rates.per_usd.extend(
            per_usd
                .into_iter()
                .filter(|(c, r)| *c != Currency::USD && r.is_finite() && *r > 0.0),
        );
        rates
    }

    pub fn knows(&self, currency: Currency) -> bool {
        self.per_usd.contains_key(&currency)
    }

    /// `amount` of `from` in `to`; `None` when either currency has no rate.
    pub fn convert(&self, amount: f64, from: Currency, to: Currency) -> Option<f64> {
        if from == to {
            return Some(amount);
        }
        Some(amount / self.per_usd.get(&from)? * self.per_usd.get(&to)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn priced(model: Model, max_cpm: f64) -> Pricing {
        Pricing {
            model,
            max_order_value: None,
            max_cpm,
            currency: Currency::USD,
        }
    }

    #[test]
    fn each_model_becomes_the_expected_value_of_a_thousand_impressions() {
        assert_eq!(priced(Model::Cpm { cpm: 2.0 }, 5.0).ecpm(), 2.0);
        // 0.35 per click at 1% CTR: 3.5 per thousand impressions.
        let cpc = priced(
            Model::Cpc {
                cpc: 0.35,
                ctr: 0.01,
            },
            5.0,
        )
        .ecpm();
        assert!((cpc - 3.5).abs() < 1e-9, "{cpc}");
        // 8% of a 300 order, 3% of clicks order, 1% of impressions click: 7.2 per thousand.
        let cps = priced(
            Model::Cps {
                commission: 0.08,
                order_value: 300.0,
                cvr: 0.03,
                ctr: 0.01,
            },
            10.0,
        )
        .ecpm();
        assert!((cps - 7.2).abs() < 1e-9, "{cps}");
    }

    #[test]
    fn the_bid_never_exceeds_max_cpm() {
        assert_eq!(priced(Model::Cpm { cpm: 9.0 }, 5.0).ecpm(), 5.0);
        assert_eq!(priced(Model::Cpc { cpc: 1.0, ctr: 0.5 }, 5.0).ecpm(), 5.0);
    }

    #[test]
    fn currencies_convert_through_the_dollar_and_unknown_ones_do_not() {
        let eur = Currency::parse("eur").unwrap();
        let gbp = Currency::parse("GBP").unwrap();
        let rates = Rates::new([(eur, 0.9), (gbp, 0.75)]);
        assert_eq!(rates.convert(9.0, eur, Currency::USD), Some(10.0));
        assert_eq!(rates.convert(10.0, Currency::USD, gbp), Some(7.5));
        assert!((rates.convert(0.9, eur, gbp).unwrap() - 0.75).abs() < 1e-12);
        assert_eq!(
            rates.convert(1.0, Currency::parse("RUB").unwrap(), Currency::USD),
            None
        );
        assert_eq!(Currency::parse("US"), None);
        assert_eq!(Currency::parse("U$D"), None);
    }
}
