//! Lookalike expansion: the profiled users most like a seed audience, by their tags.
//!
//! Owns the scoring: each tag (with its ancestors, so `sports/running/trail` also counts as
//! `sports/running` and `sports`) gets the weight a Bernoulli naive-Bayes model learns from the seed
//! against the rest of the population, the smoothed log-odds ratio
//! `ln(θs / (1 − θs)) − ln(θp / (1 − θp))`, where θs and θp are the shares of seed and non-seed
//! users holding it. A user's score is the sum of the weights of the tags they hold; the top N
//! users not in the seed are the expansion. Also owns [`planted`], the generated population (with
//! a planted group) that tests and the reference's figures (docs/reference.md) measure recovery on. Offline only (`precis
//! audience expand`): it never runs in the bidder.

use std::collections::{HashMap, HashSet};

use crate::forms::ancestors;
use crate::request::user::UserId;
use precis_generate::Rng;

/// Smoothing: each tag counts as seen this many times more in and out of the seed.
const ALPHA: f64 = 1.0;

/// A user and their tags (in tag form; a user may appear more than once, their tags join).
pub type Profile = (UserId, Vec<String>);

/// The `size` users of `profiles` not in the seed (`is_seed`) whose tags are most like the seed's, best first,
/// with their scores. Ties go to the lower id, so the same input gives the same output.
pub fn expand(
    profiles: &[Profile],
    is_seed: impl Fn(UserId) -> bool,
    size: usize,
) -> Vec<(UserId, f64)> {
    // Every user's features: tags and ancestors, as ids, without repeats.
    let mut feature_ids: HashMap<&str, usize> = HashMap::new();
    let mut users: HashMap<UserId, Vec<usize>> = HashMap::new();
    for (user, tags) in profiles {
        let features = users.entry(*user).or_default();
        for tag in tags {
            for feature in ancestors(tag, '/', usize::MAX) {
                let next = feature_ids.len();
                features.push(*feature_ids.entry(feature).or_insert(next));
            }
        }
    }
    let mut in_seed = vec![0u64; feature_ids.len()];
    let mut in_all = vec![0u64; feature_ids.len()];
    let mut seeds = 0u64;
    for (user, features) in &mut users {
        features.sort_unstable();
        features.dedup();
        let seeded = is_seed(*user);
        seeds += u64::from(seeded);
        for &f in features.iter() {
            in_all[f] += 1;
            in_seed[f] += u64::from(seeded);
        }
    }
    let others = users.len() as u64 - seeds;
    let log_odds = |held: u64, of: u64| {
        let share = (held as f64 + ALPHA) / (of as f64 + 2.0 * ALPHA);
        (share / (1.0 - share)).ln()
    };
    let weights: Vec<f64> = in_seed
        .iter()
        .zip(&in_all)
        .map(|(&s, &all)| log_odds(s, seeds) - log_odds(all - s, others))
        .collect();
    let mut ranked: Vec<(UserId, f64)> = users
        .iter()
        .filter(|(user, _)| !is_seed(**user))
        .map(|(user, features)| (*user, features.iter().map(|&f| weights[f]).sum()))
        .collect();
    let best_first = |a: &(UserId, f64), b: &(UserId, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if ranked.len() > size && size > 0 {
        ranked.select_nth_unstable_by(size - 1, best_first);
    }
    ranked.truncate(size);
    ranked.sort_unstable_by(best_first);
    ranked
}

/// What [`expand_dir`] did.
#[derive(Debug)]
pub struct Expanded {
    /// Users written.
    pub written: usize,
    /// Profile lines read (a user may have several).
    pub lines: usize,
    /// Bad profile lines skipped, as `path:line: message`.
    pub problems: Vec<String>,
}

/// `precis audience expand`: reads the population from the bulk profile files in `profiles`,
/// expands `seed` by `size` users and writes them to `out` as a package of ids.
pub fn expand_dir(
    seed: &crate::audience::Package,
    profiles: &std::path::Path,
    size: usize,
    out: &std::path::Path,
) -> std::io::Result<Expanded> {
    let (updates, problems) = crate::audience::profiles::bulk::read_all(profiles)?;
    let population: Vec<Profile> = updates.into_iter().map(|u| (u.user, u.tags)).collect();
    let found = expand(&population, |user| seed.contains(user), size);
    let about = format!(
        "lookalike of {} ({} users) among {} profile lines: the {} best",
        seed.name,
        seed.users(),
        population.len(),
        found.len()
    );
    write_package(out, &found, &about)?;
    Ok(Expanded {
        written: found.len(),
        lines: population.len(),
        problems,
    })
}

/// Writes `users` as an audience package of ids: a `# keys: uid` header (profiles hold ids, not
/// raw keys), a comment saying what made it, and one 16-hex-digit [`UserId`] per line; replaced
/// whole, so a watching bidder never reads half of it.
pub fn write_package(
    path: &std::path::Path,
    users: &[(UserId, f64)],
    about: &str,
) -> std::io::Result<()> {
    use std::io::Write;
    crate::files::replace(path, |out| {
        writeln!(out, "# keys: uid")?;
        writeln!(out, "# {about}")?;
        for (user, _) in users {
            writeln!(out, "{user}")?;
        }
        Ok(())
    })
}

/// A generated population with a planted group: what lookalike recovery is measured on.
pub struct Planted {
    /// User `n` is the user of key [`planted_key`]`(n)`.
    pub profiles: Vec<Profile>,
    /// The part of the group given as the seed.
    pub seed: Vec<UserId>,
    /// The rest of the group, which a good expansion finds.
    pub held_out: Vec<UserId>,
}

/// How well an expansion found the held-out part of a planted group.
#[derive(Debug, Clone, Copy)]
pub struct Recovery {
    /// Share of the expansion that is held out.
    pub precision: f64,
    /// Share of the held out that the expansion found.
    pub recall: f64,
    /// The precision of `size` users drawn at random from the non-seed users.
    pub random: f64,
}

/// Generates `users` users (keys `user-N`), each with 20 tags drawn from a 3-level taxonomy of 432
/// leaves (popular leaves more often). 1% of them form a group that draws a third of its tags
/// from 12 leaves of its own (an interest the rest share only by chance); half the group is the
/// seed, half is held out. The same `seed` gives the same population.
pub fn planted(seed: u64, users: usize) -> Planted {
    let leaves: Vec<String> = (0..18)
        .flat_map(|r| (0..6).flat_map(move |c| (0..4).map(move |g| format!("t{r}/c{c}/g{g}"))))
        .collect();
    // Zipf-like popularity, in an order unrelated to the hierarchy.
    let mut rng = Rng::new(seed);
    let mut order: Vec<usize> = (0..leaves.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut cumulative = Vec::with_capacity(leaves.len());
    let mut total = 0.0;
    for rank in 0..leaves.len() {
        total += 1.0 / (rank as f64 + 1.0).powf(0.8);
        cumulative.push(total);
    }
    let draw_common = |rng: &mut Rng| {
        let at = rng.unit() * total;
        let rank = cumulative
            .partition_point(|&c| c <= at)
            .min(leaves.len() - 1);
        order[rank]
    };
    // The group's interest: 12 leaves from the middle of the popularity ranking.
    let interest: Vec<usize> = (0..12).map(|i| order[100 + i * 7]).collect();
    let mut planted = Planted {
        profiles: Vec::with_capacity(users),
        seed: Vec::new(),
        held_out: Vec::new(),
    };
    for n in 0..users {
        let mut rng = Rng::stream(seed, n as u64);
        let user = UserId::of_key(&planted_key(n));
        let member = rng.chance(0.01);
        let tags = (0..20)
            .map(|_| {
                let leaf = if member && rng.chance(1.0 / 3.0) {
                    interest[rng.below(interest.len())]
                } else {
                    draw_common(&mut rng)
                };
                leaves[leaf].clone()
            })
            .collect();
        planted.profiles.push((user, tags));
        if member {
            match rng.chance(0.5) {
                true => planted.seed.push(user),
                false => planted.held_out.push(user),
            }
        }
    }
    planted
}

/// The raw key of generated user `n`.
pub fn planted_key(n: usize) -> String {
    format!("user-{n}")
}

impl Planted {
    /// Expands the seed by as many users as are held out, and measures what it found.
    pub fn recovery(&self) -> Recovery {
        let seed: HashSet<UserId> = self.seed.iter().copied().collect();
        let size = self.held_out.len();
        let found = expand(&self.profiles, |user| seed.contains(&user), size);
        let held_out: HashSet<UserId> = self.held_out.iter().copied().collect();
        let hits = found.iter().filter(|(u, _)| held_out.contains(u)).count() as f64;
        Recovery {
            precision: hits / found.len().max(1) as f64,
            recall: hits / size.max(1) as f64,
            random: size as f64 / (self.profiles.len() - seed.len()).max(1) as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expansion_recovers_a_planted_group_as_the_readme_says() {
        // docs/reference.md, Lookalikes: 50,000 users of seed 1, N = the 256 held out.
        let planted = planted(1, 50_000);
        assert_eq!((planted.seed.len(), planted.held_out.len()), (284, 256));
        let recovery = planted.recovery();
        let figures = format!(
            "precision {:.2}, recall {:.2}, random {:.3}",
            recovery.precision, recovery.recall, recovery.random
        );
        assert_eq!(
            figures, "precision 0.85, recall 0.85, random 0.005",
            "{recovery:?}"
        );
    }

    #[test]
    fn the_seed_is_never_in_the_expansion_and_ancestors_count() {
        let user = |n: u64| UserId(n);
        let tags = |t: &[&str]| t.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
        let profiles = vec![
            (user(1), tags(&["sports/running/trail"])),
            (user(2), tags(&["sports/running/road"])),
            (user(3), tags(&["sports/running"])),
            (user(4), tags(&["food"])),
            (user(5), tags(&["sports/golf"])),
        ];
        let seed: HashSet<UserId> = [user(1)].into();
        let found: Vec<UserId> = expand(&profiles, |u| seed.contains(&u), 3)
            .into_iter()
            .map(|(u, _)| u)
            .collect();
        // 2 and 3 share `sports/running` with the seed; 4 and 5 share nothing more telling.
        assert!(
            found[..2].contains(&user(2)) && found[..2].contains(&user(3)),
            "{found:?}"
        );
        assert!(expand(&profiles, |u| seed.contains(&u), 0).is_empty());
        assert_eq!(expand(&profiles, |u| seed.contains(&u), 99).len(), 4);
    }
}
