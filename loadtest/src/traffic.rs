//! Where bid request bodies come from: a directory of OpenRTB request files replayed in turn, or
//! the visitors of the campaign generator (`precis gen-campaigns`' seeded world, the
//! `precis-generate` crate), as strangers or as a crowd of returning users. Every body gets its own
//! request `id` (`load-N`), so no two requests of a run are the same. Bodies only: this module
//! never sends them.

use std::path::Path;

use anyhow::Context;
use bytes::Bytes;
use serde_json::Value;

use precis_generate::{Crowd, Generator};

/// A stand-in for the request id while a replayed file is serialised, then cut out.
const ID_SLOT: &str = "precis-load:request-id";

pub enum Traffic {
    /// Files from a directory, in name order, round and round.
    Replay(Vec<Template>),
    /// Visitor `seq` of the campaign generator's seed from the crowd: drawn from the places and
    /// taxonomy its campaigns target.
    Visitors(Generator, Crowd),
}

/// A replayed request, serialised once, around its id: the body is `head` + id + `tail`.
pub struct Template {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl Traffic {
    /// The `*.json` files at the top of `dir` that are bid requests (a JSON object with a
    /// non-empty `imp` array). Also returns one note per file skipped, saying why.
    pub fn replay(dir: &Path) -> anyhow::Result<(Traffic, Vec<String>)> {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read --requests {}", dir.display()))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        let mut templates = Vec::new();
        let mut notes = Vec::new();
        for path in paths {
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| Template::new(&bytes));
            match parsed {
                Ok(template) => templates.push(template),
                Err(why) => notes.push(format!("skipped {}: {why}", path.display())),
            }
        }
        anyhow::ensure!(
            !templates.is_empty(),
            "no bid request files (*.json with an imp array) in {}",
            dir.display()
        );
        Ok((Traffic::Replay(templates), notes))
    }

    /// The body of request `seq` of the run.
    pub fn body(&self, seq: u64) -> Bytes {
        let id = format!("load-{seq}");
        match self {
            Traffic::Replay(templates) => {
                // Never empty (checked when loading); the remainder fits in usize.
                let template = &templates[(seq % templates.len() as u64) as usize];
                let mut body =
                    Vec::with_capacity(template.head.len() + id.len() + template.tail.len());
                body.extend_from_slice(&template.head);
                body.extend_from_slice(id.as_bytes());
                body.extend_from_slice(&template.tail);
                body.into()
            }
            Traffic::Visitors(generator, crowd) => {
                let index = usize::try_from(seq).unwrap_or(usize::MAX);
                let visitor = generator.visitor_in(*crowd, index);
                visitor.bid_request(&id).into()
            }
        }
    }
}

impl Template {
    /// A bid request file as a template. Imp ids are set to 1, 2, ... when some are missing or
    /// repeated, since bids refer to imps by id.
    fn new(bytes: &[u8]) -> Result<Template, String> {
        let mut request: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let Some(imps) = request.get_mut("imp").and_then(Value::as_array_mut) else {
            return Err("not a bid request (no imp array)".to_owned());
        };
        if imps.is_empty() {
            return Err("not a bid request (empty imp array)".to_owned());
        }
        let mut ids: Vec<Option<&str>> = imps.iter().map(|imp| imp["id"].as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != imps.len() || ids.contains(&None) {
            for (n, imp) in imps.iter_mut().enumerate() {
                if let Value::Object(imp) = imp {
                    imp.insert("id".to_owned(), (n + 1).to_string().into());
                }
            }
        }
        let Value::Object(fields) = &mut request else {
            return Err("not a bid request (not an object)".to_owned());
        };
        fields.insert("id".to_owned(), ID_SLOT.into());
        let text = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        let quoted = format!("\"{ID_SLOT}\"");
        let at = text
            .windows(quoted.len())
            .position(|w| w == quoted.as_bytes())
            .ok_or("the request id could not be placed")?;
        Ok(Template {
            head: text[..=at].to_vec(),
            tail: text[at + quoted.len() - 1..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8]) -> Value {
        serde_json::from_slice(body).expect("a body is JSON")
    }

    #[test]
    fn replayed_files_get_a_new_id_each_time_round_and_round() {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text);
        write(
            "a.json",
            r#"{"id": "orig", "imp": [{"id": "x", "banner": {"w": 300, "h": 250}}]}"#,
        )
        .expect("write");
        write(
            "b.json",
            r#"{"imp": [{"banner": {}}, {"id": "1"}], "site": {"id": "s"}}"#,
        )
        .expect("write");
        write("broken.json", r#"{"id": "#).expect("write");
        write("response.json", r#"{"id": "r", "seatbid": []}"#).expect("write");
        write("notes.txt", "not a request").expect("write");
        std::fs::create_dir(dir.path().join("nested.json")).expect("a directory is not a file");

        let (traffic, notes) = Traffic::replay(dir.path()).expect("two good files");
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("broken.json") && notes[0].contains("not JSON"));
        assert!(notes[1].contains("response.json") && notes[1].contains("no imp"));

        let first = parse(&traffic.body(0));
        assert_eq!(first["id"], "load-0");
        assert_eq!(first["imp"][0]["id"], "x", "unique imp ids are kept");
        let second = parse(&traffic.body(1));
        assert_eq!(second["id"], "load-1");
        assert_eq!(second["site"]["id"], "s");
        assert_eq!(second["imp"][0]["id"], "1", "a missing imp id is numbered");
        assert_eq!(second["imp"][1]["id"], "2");
        let third = parse(&traffic.body(2));
        assert_eq!(
            (&third["id"], &third["imp"][0]["id"]),
            (&"load-2".into(), &"x".into())
        );
    }

    #[test]
    fn a_directory_without_requests_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("x.json"), "[]").expect("write");
        assert!(Traffic::replay(dir.path()).is_err());
        assert!(Traffic::replay(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn visitors_carry_the_run_id_and_are_the_same_for_a_seed() {
        let crowds = [Crowd::Strangers, Crowd::Returning { users: 1000 }];
        for crowd in crowds {
            let traffic = Traffic::Visitors(Generator::new(7), crowd);
            let again = Traffic::Visitors(Generator::new(7), crowd);
            let other = Traffic::Visitors(Generator::new(8), crowd);
            for seq in 0..200 {
                let body = traffic.body(seq);
                let request = parse(&body);
                assert_eq!(request["id"], format!("load-{seq}"), "{crowd:?}");
                let imps = request["imp"].as_array().map(Vec::len);
                let most = if crowd == Crowd::Strangers { 1 } else { 2 };
                assert!(imps.is_some_and(|n| (1..=most).contains(&n)), "{crowd:?}");
                assert_eq!(body, again.body(seq), "{crowd:?}");
            }
            assert_ne!(traffic.body(0), other.body(0), "{crowd:?}");
        }
    }
}
