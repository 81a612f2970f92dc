//! A creative's markup (`adm`), compiled when its campaign loads into the form bids are written
//! in: the text JSON-escaped once, cut where its `${CLICK_URL}` and `${IMP_URL}` macros stand.
//!
//! Filling a bid's markup then copies the pieces and the bid's URLs into the response as they
//! are: nothing is searched or escaped per bid. Other `${…}` macros (the exchange's own, such as
//! `${AUCTION_PRICE}`) stay in the text for the exchange to fill. This module never sees a
//! request: it only holds text.

/// A macro precis fills in markup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Macro {
    /// `${CLICK_URL}`: the bid's click redirect.
    Click,
    /// `${IMP_URL}`: the bid's impression pixel.
    Imp,
}

impl Macro {
    const ALL: [(Macro, &'static str); 2] =
        [(Macro::Click, "${CLICK_URL}"), (Macro::Imp, "${IMP_URL}")];
}

/// Markup as JSON string content (without quotes), with the places its macros stood. Boxed
/// slices, not `Vec`s: a creative holds one for as long as its campaign is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Markup {
    /// The escaped text, the macros taken out.
    json: Box<str>,
    /// Where each macro stood in `json` (a byte offset: markup comes from a campaign file, far
    /// under 4 GiB), in order.
    slots: Box<[(u32, Macro)]>,
}

impl Markup {
    /// Compiles `adm`.
    pub fn new(adm: &str) -> Markup {
        let mut json = String::with_capacity(adm.len() + adm.len() / 8);
        let mut slots = Vec::new();
        let mut rest = adm;
        while let Some(at) = rest.find("${") {
            let (before, from) = rest.split_at(at);
            escape_into(&mut json, before);
            let taken = match Macro::ALL.iter().find(|(_, name)| from.starts_with(name)) {
                Some(&(slot, name)) => {
                    slots.push((u32::try_from(json.len()).unwrap_or(u32::MAX), slot));
                    name.len()
                }
                None => {
                    json.push_str("${");
                    2
                }
            };
            rest = from.get(taken..).unwrap_or_default();
        }
        escape_into(&mut json, rest);
        Markup {
            json: json.into_boxed_str(),
            slots: slots.into_boxed_slice(),
        }
    }

    /// Writes the markup as JSON string content with each macro replaced by what `fill` writes
    /// for it (which must itself write JSON string content).
    pub fn write(&self, out: &mut Vec<u8>, mut fill: impl FnMut(&mut Vec<u8>, Macro)) {
        let mut from = 0;
        for &(at, slot) in &self.slots {
            let at = at as usize;
            out.extend_from_slice(self.json.as_bytes().get(from..at).unwrap_or_default());
            fill(out, slot);
            from = at;
        }
        out.extend_from_slice(self.json.as_bytes().get(from..).unwrap_or_default());
    }

    /// Whether `slot` stands in the markup (so the bid needs its URL).
    pub fn has(&self, slot: Macro) -> bool {
        self.slots.iter().any(|&(_, s)| s == slot)
    }

    /// Bytes of escaped text held.
    pub fn len(&self) -> usize {
        self.json.len()
    }

    /// Whether the markup is empty.
    pub fn is_empty(&self) -> bool {
        self.json.is_empty() && self.slots.is_empty()
    }
}

/// Appends `text` as JSON string content (without quotes): `"`, `\` and control characters
/// escaped as serde_json escapes them.
pub fn escape_into(out: &mut String, text: &str) {
    // serde_json writes a str as a quoted JSON string, escaping exactly what JSON requires.
    let quoted = serde_json::to_string(text).unwrap_or_default();
    out.push_str(
        quoted
            .get(1..quoted.len().saturating_sub(1))
            .unwrap_or_default(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The markup as the exchange reads it: the JSON string decoded, the macros filled.
    fn filled(markup: &Markup) -> String {
        let mut out = b"\"".to_vec();
        markup.write(&mut out, |out, slot| {
            out.extend_from_slice(match slot {
                Macro::Click => b"https://c.example/?a=1&b=\\\"2\\\"",
                Macro::Imp => b"IMP",
            })
        });
        out.push(b'"');
        serde_json::from_slice(&out).expect("the markup is JSON string content")
    }

    #[test]
    fn macros_are_filled_and_everything_else_is_kept_as_written() {
        let adm = "<a href=\"${CLICK_URL}\">\tgo\\</a><img src='${IMP_URL}'> ${AUCTION_PRICE} ${ \
                   ${CLICK_URL}${CLICK_URL";
        let markup = Markup::new(adm);
        assert_eq!(
            filled(&markup),
            "<a href=\"https://c.example/?a=1&b=\"2\"\">\tgo\\</a><img src='IMP'> \
             ${AUCTION_PRICE} ${ https://c.example/?a=1&b=\"2\"${CLICK_URL"
        );
        assert_eq!(filled(&Markup::new("")), "");
        assert_eq!(filled(&Markup::new("${IMP_URL}")), "IMP");
        assert_eq!(filled(&Markup::new("${${IMP_URL}</a>$")), "${IMP</a>$");
        assert_eq!(filled(&Markup::new("no macros")), "no macros");
        assert_eq!(filled(&Markup::new("é \u{1} ${")), "é \u{1} ${");
    }
}
