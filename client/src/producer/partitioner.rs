//! Choosing a partition for each record, the way the Java client and librdkafka do.
//!
//! A keyed record must land on the same partition whichever client produced it, or
//! consumers that rely on per-key ordering (and compacted topics) break the day a Java
//! service and a Rust service write the same topic. So keyed records go through
//! [`murmur2`], bit for bit Kafka's `Utils.murmur2`, and
//! `to_positive(murmur2(key)) % partitions` ([`keyed_partition`]): the Java client's
//! built-in partitioner and librdkafka's `murmur2_random` / `murmur2` agree on it.
//!
//! Records without a key have no placement to honour, so the choice is about batching:
//!
//! ```text
//! record ──key?──yes──► to_positive(murmur2(key)) % partitions   (every partition counts)
//!            │
//!            no──► DefaultPartitioner:        sticky partition per topic, random among
//!                                              `available`, kept until on_new_batch
//!                  Murmur2RandomPartitioner:  random among `available`, per record
//!                  Murmur2Partitioner:        murmur2 of the empty key (one partition)
//! ```
//!
//! The producer calls [`Partitioner::partition`] for each record whose partition the
//! caller left open and [`Partitioner::on_new_batch`] when the batch for the previous
//! choice is full, which is when a sticky partitioner moves on (Java's
//! `StickyPartitionCache`, KIP-480). [`partitioner_for`] maps the names of the
//! `partitioner` setting of the Java client and librdkafka onto these; any type
//! implementing [`Partitioner`] can be plugged in instead.
//!
//! ```
//! use strom_client::producer::partitioner::{keyed_partition, DefaultPartitioner, Partitioner};
//!
//! let partitioner = DefaultPartitioner::default();
//! let all = [0, 1, 2, 3, 4, 5];
//!
//! // A key goes where the Java client puts it: murmur2("21") is -973932308.
//! assert_eq!(partitioner.partition("orders", Some(b"21"), 6, &all), (-973_932_308 & 0x7fff_ffff) % 6);
//! assert_eq!(keyed_partition(b"21", 6), partitioner.partition("orders", Some(b"21"), 6, &[]));
//!
//! // No key: one partition per topic until its batch is full, then another.
//! let sticky = partitioner.partition("orders", None, 6, &all);
//! assert_eq!(partitioner.partition("orders", None, 6, &all), sticky);
//! partitioner.on_new_batch("orders", sticky);
//! assert_ne!(partitioner.partition("orders", None, 6, &all), sticky);
//! ```

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use rand::Rng;

/// Kafka's `Utils.murmur2`: 32-bit MurmurHash2 with seed `0x9747b28c`, reading the input
/// as little-endian 4-byte blocks, the result as Java's signed `int`.
///
/// ```
/// use strom_client::producer::partitioner::murmur2;
/// assert_eq!(murmur2(b"foobar"), -790_332_482);
/// ```
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Java's `int length`: inputs past 2 GiB are not keys, truncation matches Java's view.
    let mut h = SEED ^ (data.len() as u32);
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    // Java's switch on `length % 4` falls through from case 3 to case 1.
    let tail = blocks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on
/// `i32::MIN` and would place keys differently).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition of a keyed record in the Java client and librdkafka's `murmur2` /
/// `murmur2_random`: `to_positive(murmur2(key)) % partitions`, over all partitions
/// whether or not they have a leader. Returns 0 when `partitions <= 0`.
pub fn keyed_partition(key: &[u8], partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    to_positive(murmur2(key)) % partitions
}

/// Picks the partition of a record the caller did not place itself.
///
/// Implementations must return a partition `p` with `0 <= p < partitions`; the
/// built-in ones return 0 when `partitions <= 0`, which the producer never passes.
/// They are shared by every task producing through one producer, hence `Send + Sync`
/// and `&self`: keep state behind a lock.
pub trait Partitioner: Send + Sync + std::fmt::Debug {
    /// The partition for a record to `topic` with `key` (`None`: no key), given the
    /// topic's partition count and `available`, the partitions that currently have a
    /// leader. `available` may be empty; then every partition counts as available.
    fn partition(&self, topic: &str, key: Option<&[u8]>, partitions: i32, available: &[i32])
        -> i32;

    /// Called when the batch the producer was filling for `topic` on `previous` is
    /// full and a new one starts. Sticky partitioners move on here; the default does
    /// nothing.
    fn on_new_batch(&self, topic: &str, previous: i32) {
        let _ = (topic, previous);
    }
}

/// The Java client's default ("built-in", KIP-480 / KIP-794) partitioner.
///
/// Keyed records: [`keyed_partition`] over all partitions, even those without a
/// leader, as Java does. Records without a key: one sticky partition per topic,
/// chosen at random among `available` and kept until [`Partitioner::on_new_batch`]
/// retires it; the next choice differs from the retired one when more than one
/// partition is available. A sticky partition that drops out of a non-empty
/// `available` is replaced at once.
#[derive(Debug, Default)]
pub struct DefaultPartitioner {
    sticky: Mutex<HashMap<String, Sticky>>,
}

/// The sticky choice for one topic.
#[derive(Debug, Clone, Copy)]
enum Sticky {
    /// Records without a key go here.
    Current(i32),
    /// The batch on this partition is full: choose another on the next record.
    Retired(i32),
}

impl DefaultPartitioner {
    /// A partitioner with no sticky choices made yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn sticky_partition(&self, topic: &str, partitions: i32, available: &[i32]) -> i32 {
        let mut sticky = self.sticky.lock().unwrap_or_else(PoisonError::into_inner);
        let avoid = match sticky.get(topic) {
            Some(Sticky::Current(p)) if usable(*p, partitions, available) => return *p,
            Some(Sticky::Current(p) | Sticky::Retired(p)) => Some(*p),
            None => None,
        };
        let chosen = random_partition(partitions, available, avoid);
        sticky.insert(topic.to_owned(), Sticky::Current(chosen));
        chosen
    }
}

impl Partitioner for DefaultPartitioner {
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        partitions: i32,
        available: &[i32],
    ) -> i32 {
        match key {
            Some(key) => keyed_partition(key, partitions),
            None if partitions <= 0 => 0,
            None => self.sticky_partition(topic, partitions, available),
        }
    }

    fn on_new_batch(&self, topic: &str, previous: i32) {
        let mut sticky = self.sticky.lock().unwrap_or_else(PoisonError::into_inner);
        // Only retire the choice the batch was made for; another thread may have moved on.
        if let Some(state) = sticky.get_mut(topic) {
            if matches!(state, Sticky::Current(p) if *p == previous) {
                *state = Sticky::Retired(previous);
            }
        }
    }
}

/// librdkafka's default, `murmur2_random`: keyed records like the Java client
/// ([`keyed_partition`]), records without a key on a random available partition each.
#[derive(Debug, Default, Clone, Copy)]
pub struct Murmur2RandomPartitioner;

impl Partitioner for Murmur2RandomPartitioner {
    fn partition(&self, _: &str, key: Option<&[u8]>, partitions: i32, available: &[i32]) -> i32 {
        match key {
            Some(key) => keyed_partition(key, partitions),
            None => random_partition(partitions, available, None),
        }
    }
}

/// librdkafka's `murmur2`: keyed records like the Java client, and records without a
/// key hashed as the empty key, so they all go to one partition.
#[derive(Debug, Default, Clone, Copy)]
pub struct Murmur2Partitioner;

impl Partitioner for Murmur2Partitioner {
    fn partition(&self, _: &str, key: Option<&[u8]>, partitions: i32, _: &[i32]) -> i32 {
        keyed_partition(key.unwrap_or_default(), partitions)
    }
}

/// librdkafka's `random`: every record, keyed or not, on a random available partition.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomPartitioner;

impl Partitioner for RandomPartitioner {
    fn partition(&self, _: &str, _: Option<&[u8]>, partitions: i32, available: &[i32]) -> i32 {
        random_partition(partitions, available, None)
    }
}

/// The partitioner for a name of the Java client's or librdkafka's `partitioner`
/// setting: `"default"` ([`DefaultPartitioner`]), `"murmur2_random"`
/// ([`Murmur2RandomPartitioner`]), `"murmur2"` ([`Murmur2Partitioner`]) and `"random"`
/// ([`RandomPartitioner`]).
///
/// `None` for any other name, including librdkafka's CRC32-based `"consistent"` and
/// `"consistent_random"` and `"fnv1a"` / `"fnv1a_random"`, which are not implemented:
/// their placement differs from the Java client's.
pub fn partitioner_for(name: &str) -> Option<Box<dyn Partitioner>> {
    match name {
        "default" => Some(Box::new(DefaultPartitioner::new())),
        "murmur2_random" => Some(Box::new(Murmur2RandomPartitioner)),
        "murmur2" => Some(Box::new(Murmur2Partitioner)),
        "random" => Some(Box::new(RandomPartitioner)),
        _ => None,
    }
}

/// Whether `p` may take records: in range, and available when `available` names any
/// partition in range.
fn usable(p: i32, partitions: i32, available: &[i32]) -> bool {
    let in_range = |p: &i32| (0..partitions).contains(p);
    in_range(&p) && (available.contains(&p) || !available.iter().any(in_range))
}

/// A random partition among the in-range entries of `available` (all partitions when
/// there are none), other than `avoid` unless it is the only one. 0 if `partitions <= 0`.
fn random_partition(partitions: i32, available: &[i32], avoid: Option<i32>) -> i32 {
    let in_range = |p: &i32| (0..partitions).contains(p);
    pick(available.iter().copied().filter(in_range), avoid)
        .or_else(|| pick(0..partitions.max(0), avoid))
        .unwrap_or(0)
}

/// A uniformly random candidate other than `avoid`; `avoid` too if nothing else is left.
fn pick(candidates: impl Iterator<Item = i32> + Clone, avoid: Option<i32>) -> Option<i32> {
    let others = candidates.clone().filter(|c| Some(*c) != avoid).count();
    let (skip, count) = match others {
        0 => (None, candidates.clone().count()),
        n => (avoid, n),
    };
    if count == 0 {
        return None;
    }
    let index = rand::rng().random_range(0..count);
    candidates.filter(|c| Some(*c) != skip).nth(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka_utils_test() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (data, expected) in cases {
            assert_eq!(murmur2(data), expected, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn to_positive_masks_the_sign_bit() {
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-973_932_308), 1_173_551_340);
        assert_eq!(to_positive(42), 42);
    }

    #[test]
    fn no_partitions_gives_zero() {
        for name in ["default", "murmur2_random", "murmur2", "random"] {
            let partitioner = partitioner_for(name).unwrap();
            for partitions in [0, -3] {
                assert_eq!(partitioner.partition("t", Some(b"k"), partitions, &[]), 0);
                assert_eq!(partitioner.partition("t", None, partitions, &[1, 2]), 0);
            }
        }
    }

    #[test]
    fn names_map_to_partitioners() {
        assert!(format!("{:?}", partitioner_for("default").unwrap()).contains("Default"));
        assert!(format!("{:?}", partitioner_for("murmur2_random").unwrap()).contains("Random"));
        assert_eq!(
            format!("{:?}", partitioner_for("murmur2").unwrap()),
            "Murmur2Partitioner"
        );
        assert_eq!(
            format!("{:?}", partitioner_for("random").unwrap()),
            "RandomPartitioner"
        );
        for name in ["consistent", "consistent_random", "fnv1a", ""] {
            assert!(partitioner_for(name).is_none(), "{name}");
        }
    }

    #[test]
    fn keyed_records_ignore_availability() {
        // Java hashes over all partitions, so a key keeps its partition through an outage.
        let p = DefaultPartitioner::new();
        let expected = keyed_partition(b"21", 6);
        let others: Vec<i32> = (0..6).filter(|p| *p != expected).collect();
        assert_eq!(p.partition("t", Some(b"21"), 6, &others), expected);
        assert_eq!(
            Murmur2RandomPartitioner.partition("t", Some(b"21"), 6, &others),
            expected
        );
    }

    #[test]
    fn sticky_until_new_batch_then_moves() {
        let p = DefaultPartitioner::new();
        let all: Vec<i32> = (0..8).collect();
        let mut previous = p.partition("t", None, 8, &all);
        for _ in 0..50 {
            for _ in 0..20 {
                assert_eq!(p.partition("t", None, 8, &all), previous);
            }
            p.on_new_batch("t", previous);
            let next = p.partition("t", None, 8, &all);
            assert_ne!(next, previous);
            assert!((0..8).contains(&next));
            previous = next;
        }
    }

    #[test]
    fn new_batch_for_a_stale_partition_keeps_the_current_one() {
        let p = DefaultPartitioner::new();
        let current = p.partition("t", None, 4, &[]);
        p.on_new_batch("t", (current + 1) % 4);
        p.on_new_batch("other-topic", current);
        assert_eq!(p.partition("t", None, 4, &[]), current);
    }

    #[test]
    fn sticky_choices_are_per_topic() {
        let p = DefaultPartitioner::new();
        let a = p.partition("a", None, 4, &[]);
        let b = p.partition("b", None, 4, &[]);
        p.on_new_batch("a", a);
        assert_ne!(p.partition("a", None, 4, &[]), a);
        assert_eq!(p.partition("b", None, 4, &[]), b);
    }

    #[test]
    fn sticky_respects_available() {
        let p = DefaultPartitioner::new();
        let available = [2, 5];
        let mut previous = p.partition("t", None, 8, &available);
        assert!(available.contains(&previous));
        for _ in 0..20 {
            p.on_new_batch("t", previous);
            let next = p.partition("t", None, 8, &available);
            // Two choices and the previous one is avoided: they alternate.
            assert_eq!(next, if previous == 2 { 5 } else { 2 });
            previous = next;
        }
    }

    #[test]
    fn sticky_with_one_available_partition_stays() {
        let p = DefaultPartitioner::new();
        assert_eq!(p.partition("t", None, 8, &[3]), 3);
        p.on_new_batch("t", 3);
        assert_eq!(p.partition("t", None, 8, &[3]), 3);
    }

    #[test]
    fn sticky_partition_losing_its_leader_is_replaced() {
        let p = DefaultPartitioner::new();
        let first = p.partition("t", None, 3, &[]);
        let others: Vec<i32> = (0..3).filter(|p| *p != first).collect();
        let next = p.partition("t", None, 3, &others);
        assert!(others.contains(&next));
        assert_eq!(p.partition("t", None, 3, &others), next);
    }

    #[test]
    fn sticky_survives_a_poisoned_lock() {
        let p = std::sync::Arc::new(DefaultPartitioner::new());
        let current = p.partition("t", None, 4, &[]);
        let poisoner = std::sync::Arc::clone(&p);
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.sticky.lock();
            panic!("poison the lock");
        })
        .join();
        assert!(p.sticky.is_poisoned());
        assert_eq!(p.partition("t", None, 4, &[]), current);
    }

    #[test]
    fn murmur2_partitioner_puts_null_keys_on_one_partition() {
        let expected = keyed_partition(b"", 7);
        for _ in 0..20 {
            assert_eq!(Murmur2Partitioner.partition("t", None, 7, &[]), expected);
        }
    }

    #[test]
    fn random_spreads_over_available_only() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..500 {
            seen.insert(RandomPartitioner.partition("t", Some(b"k"), 10, &[1, 4, 7]));
            seen.insert(Murmur2RandomPartitioner.partition("t", None, 10, &[1, 4, 7]));
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), [1, 4, 7]);
    }

    #[test]
    fn out_of_range_available_entries_are_ignored() {
        for _ in 0..100 {
            assert_eq!(RandomPartitioner.partition("t", None, 4, &[9, -1, 2]), 2);
            let p = RandomPartitioner.partition("t", None, 4, &[9, -1]);
            assert!((0..4).contains(&p));
        }
    }

    proptest! {
        #[test]
        fn keyed_partition_is_in_range_and_stable(
            key in proptest::collection::vec(any::<u8>(), 0..64),
            partitions in 1..10_000i32,
        ) {
            let p = keyed_partition(&key, partitions);
            prop_assert!((0..partitions).contains(&p));
            prop_assert_eq!(p, to_positive(murmur2(&key)) % partitions);
            for name in ["default", "murmur2_random", "murmur2"] {
                let partitioner = partitioner_for(name).unwrap();
                prop_assert_eq!(partitioner.partition("t", Some(&key), partitions, &[]), p);
                prop_assert_eq!(partitioner.partition("t", Some(&key), partitions, &[0]), p);
            }
        }

        #[test]
        fn null_key_partition_is_in_range_and_available(
            partitions in 1..64i32,
            available in proptest::collection::vec(0..64i32, 0..8),
        ) {
            let in_range: Vec<i32> = available.iter().copied().filter(|p| *p < partitions).collect();
            for name in ["default", "murmur2_random", "random"] {
                let partitioner = partitioner_for(name).unwrap();
                let p = partitioner.partition("t", None, partitions, &available);
                prop_assert!((0..partitions).contains(&p));
                prop_assert!(in_range.is_empty() || in_range.contains(&p));
                partitioner.on_new_batch("t", p);
                let q = partitioner.partition("t", None, partitions, &available);
                prop_assert!((0..partitions).contains(&q));
            }
        }
    }
}
