//! The compact set of 64-bit user ids an audience package holds: about 4.3 bytes per user.
//!
//! Ids are bucketed by their top bits (about 16 ids a bucket); each bucket keeps the low 32 bits of
//! its ids, sorted. A lookup is one offset read and a binary search of ~16 `u32`s. The bits between
//! the bucket and the low half are not kept, so an id outside the set is taken for a member with a
//! probability of about 16 in 2^32 (4e-9): one wrongly matched request in a quarter of a billion,
//! in exchange for half the memory of a sorted `Vec<u64>`. Built once, read-only after; never
//! touches disk or locks.

/// How many ids a bucket holds on average, as a power of two: more is smaller, fewer is faster.
const PER_BUCKET_BITS: u32 = 4;
/// At most 2^24 buckets (64 MiB of offsets, for a quarter of a billion users).
const MAX_BUCKET_BITS: u32 = 24;

#[derive(Debug, Clone, Default)]
pub struct Set {
    /// How many top bits of an id pick its bucket.
    bucket_bits: u32,
    /// Bucket `b` holds `lows[offsets[b]..offsets[b + 1]]`.
    offsets: Vec<u32>,
    /// The low 32 bits of each id, sorted within each bucket.
    lows: Vec<u32>,
}

impl Set {
    /// The set of `ids`, in any order, repeats allowed. Takes the ids' buffer (8 bytes per id, freed
    /// when this returns). Sets are limited to 2^32 ids (far beyond what a package holds).
    pub fn from_ids(mut ids: Vec<u64>) -> Set {
        ids.sort_unstable();
        ids.dedup();
        let significant = usize::BITS - ids.len().leading_zeros();
        let bucket_bits = significant
            .saturating_sub(PER_BUCKET_BITS)
            .min(MAX_BUCKET_BITS);
        let buckets = 1usize << bucket_bits;
        let mut offsets = Vec::with_capacity(buckets + 1);
        let mut lows = Vec::with_capacity(ids.len());
        // Sorted by the whole id, so sorted by bucket; within a bucket the low halves may repeat
        // (ids that differ only in the dropped bits): they are one member.
        for id in &ids {
            let bucket = bucket_of(*id, bucket_bits);
            while offsets.len() <= bucket {
                offsets.push(lows.len() as u32);
            }
            lows.push(*id as u32);
        }
        while offsets.len() <= buckets {
            offsets.push(lows.len() as u32);
        }
        // Each bucket's lows sorted (the high bits inside a bucket come before the low half).
        for b in 0..buckets {
            let (from, to) = (offsets[b] as usize, offsets[b + 1] as usize);
            if let Some(bucket) = lows.get_mut(from..to) {
                bucket.sort_unstable();
            }
        }
        lows.shrink_to_fit();
        Set {
            bucket_bits,
            offsets,
            lows,
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        let bucket = bucket_of(id, self.bucket_bits);
        let (Some(&from), Some(&to)) = (self.offsets.get(bucket), self.offsets.get(bucket + 1))
        else {
            return false;
        };
        self.lows
            .get(from as usize..to as usize)
            .is_some_and(|lows| lows.binary_search(&(id as u32)).is_ok())
    }

    /// Members, counted by what is kept (ids differing only in the dropped bits count once).
    pub fn len(&self) -> usize {
        self.lows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lows.is_empty()
    }

    /// Heap bytes the set takes.
    pub fn bytes(&self) -> usize {
        (self.offsets.capacity() + self.lows.capacity()) * std::mem::size_of::<u32>()
    }
}

fn bucket_of(id: u64, bucket_bits: u32) -> usize {
    id.checked_shr(64 - bucket_bits).unwrap_or(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_exactly_its_ids_at_every_size() {
        let mut rng = fastrand::Rng::with_seed(8);
        for n in [0, 1, 2, 17, 1_000, 100_000] {
            let ids: Vec<u64> = (0..n).map(|_| rng.u64(..)).collect();
            let mut with_repeats = ids.clone();
            with_repeats.extend(ids.iter().take(n / 2));
            let set = Set::from_ids(with_repeats);
            assert_eq!(set.len(), n);
            assert!(ids.iter().all(|&id| set.contains(id)), "n = {n}");
            let strangers = (0..10_000).filter(|_| set.contains(rng.u64(..))).count();
            assert_eq!(strangers, 0, "n = {n}");
        }
        let edges = Set::from_ids(vec![0, u64::MAX]);
        assert!(edges.contains(0) && edges.contains(u64::MAX) && !edges.contains(1));
    }

    #[test]
    fn costs_under_five_bytes_a_user() {
        let mut rng = fastrand::Rng::with_seed(9);
        let set = Set::from_ids((0..200_000).map(|_| rng.u64(..)).collect());
        let per_user = set.bytes() as f64 / set.len() as f64;
        assert!(per_user < 5.0, "{per_user} bytes per user");
    }
}
