//! The forms values are compared in: ids, tags, IAB categories, host names and operating systems,
//! as requests, campaign files, audience packages and profiles all write them.
//!
//! One normal form per kind of value, so that a tag a campaign names and the same tag a request
//! carries compare equal however each was spelled (`Sports / Outdoor/` is `sports/outdoor`), and the
//! hierarchies values live in (tags, categories, domains) are walked one way everywhere. Pure
//! functions on strings: nothing here allocates more than the form it returns, or fails loudly on
//! what an exchange sends.

/// Ids appear in URLs and logs: keep them to characters that need no escaping anywhere.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A tag as compared: trimmed, lower case, with no empty path segments (`Sports / Outdoor/` is `sports/outdoor`).
/// One allocation for the usual ASCII tag (this runs for every keyword of every request).
pub fn tag_form(text: &str) -> Option<String> {
    let mut form = String::with_capacity(text.len());
    for part in text.split('/').map(str::trim).filter(|p| !p.is_empty()) {
        if !form.is_empty() {
            form.push('/');
        }
        if part.is_ascii() {
            form.extend(part.chars().map(|c| c.to_ascii_lowercase()));
        } else {
            form.push_str(&part.to_lowercase());
        }
    }
    (!form.is_empty()).then_some(form)
}

/// An IAB category as compared: trimmed, upper case.
pub fn category_form(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_ascii_uppercase())
}

/// A host name as compared: lower case, without scheme, port, path or a trailing dot.
pub fn host_form(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text.split_once("://").map_or(text, |(_, rest)| rest);
    let host = text
        .split(['/', '?', '#', ':'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('.');
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// `child` equals `parent` or lies below it in a hierarchy written with `separator`
/// (`sports/outdoor/running` is within `sports`; `IAB17-3` is within `IAB17`; `sportswear` is not).
pub fn within(child: &str, parent: &str, separator: char) -> bool {
    child
        .strip_prefix(parent)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(separator))
}

/// `host` is `domain` or one of its subdomains.
pub fn on_domain(host: &str, domain: &str) -> bool {
    host.strip_suffix(domain)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
}

/// `host` and each domain it is a subdomain of (`a.b.example`: `b.example`, `example`): the
/// domains `d` for which `on_domain(host, d)`.
pub fn domains_of(host: &str) -> impl Iterator<Item = &str> {
    std::iter::once(host).chain(host.match_indices('.').map(|(at, _)| &host[at + 1..]))
}

/// `text` and each of its ancestors in a `separator`-delimited hierarchy, longest first, leaving
/// out those longer than `longest` bytes. Linear in `text`: a tag of 100,000 levels must not
/// cost 100,000 hashes of its prefixes (a request body is enough to send one).
pub fn ancestors(text: &str, separator: char, longest: usize) -> impl Iterator<Item = &str> {
    // An ancestor of at most `longest` bytes ends at a separator within the first `longest + 1`.
    let head = &text[..text.floor_char_boundary(longest.saturating_add(1))];
    let parents = head.rmatch_indices(separator).map(|(at, _)| &text[..at]);
    std::iter::once(text)
        .filter(move |t| t.len() <= longest)
        .chain(parents)
}

/// Operating system names as exchanges spell them (`iOS`, `iPhone OS`, `OS X`, `Android`) in one form.
pub fn normalize_os(text: &str) -> String {
    let squashed: String = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    match squashed.as_str() {
        "ios" | "iphoneos" | "iphone" | "ipados" | "ipad" => "ios".into(),
        "osx" | "macos" | "macosx" | "mac" => "macos".into(),
        s if s.starts_with("windows") => "windows".into(),
        _ => squashed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_reaches_what_names_it_or_an_ancestor_as_short_as_the_longest_named() {
        assert_eq!(
            ancestors("sports/football/premier-league", '/', usize::MAX).collect::<Vec<_>>(),
            [
                "sports/football/premier-league",
                "sports/football",
                "sports"
            ]
        );
        assert_eq!(
            ancestors("IAB17-3", '-', usize::MAX).collect::<Vec<_>>(),
            ["IAB17-3", "IAB17"]
        );
        // None longer than any indexed value.
        let tag = "sports/football/premier-league";
        let short = |longest| ancestors(tag, '/', longest).collect::<Vec<_>>();
        assert_eq!(short(15), ["sports/football", "sports"]);
        assert_eq!(short(14), ["sports"]);
        assert!(short(5).is_empty());
    }

    #[test]
    fn a_host_is_on_itself_and_each_parent_domain() {
        let domains: Vec<&str> = domains_of("m.shop.example").collect();
        assert_eq!(domains, ["m.shop.example", "shop.example", "example"]);
        for host in [
            "m.shop.example",
            "shop.example",
            "myshop.example",
            "a..example",
            ".",
        ] {
            for domain in [
                "shop.example",
                "example",
                ".example",
                "hop.example",
                "m.shop.example",
            ] {
                let listed = domains_of(host).any(|d| d == domain);
                assert_eq!(listed, on_domain(host, domain), "{host} on {domain}");
            }
        }
    }
}
