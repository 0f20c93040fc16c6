//! Unit tests of the accumulator: batching, readiness, draining, retries, flush marks.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use strom_protocol::records::Compression;
use tokio::sync::Semaphore;

use super::*;
use crate::producer::record::{DeliveryFuture, Record};

fn config(batch_size: usize, linger_ms: u64) -> AccumulatorConfig {
    AccumulatorConfig {
        batch_size,
        linger: Duration::from_millis(linger_ms),
        compression: Compression::None,
        delivery_timeout: Duration::from_secs(120),
        idempotent: true,
        max_in_flight: 1,
        bump_epochs: true,
    }
}

/// One semaphore for every test: a batch merges its records' permits, which must come from
/// one semaphore.
fn memory() -> Arc<Semaphore> {
    static MEMORY: OnceLock<Arc<Semaphore>> = OnceLock::new();
    MEMORY
        .get_or_init(|| Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)))
        .clone()
}

/// Appends a record with a 100-byte value; returns what the append did.
fn append(acc: &mut Accumulator, topic: &str, partition: i32) -> Appended {
    let memory = memory();
    let record = Record::new(topic).value(vec![7u8; 100]);
    let (sender, future) = DeliveryFuture::channel();
    std::mem::forget(future);
    acc.append(topic, partition, 110, |batch| {
        let permit = memory.try_acquire_many_owned(1).unwrap();
        batch.push(&record, 1, sender, permit)
    })
}

fn leader_zero(_: &str, _: i32) -> Option<i32> {
    Some(0)
}

fn any_slot(_: i32) -> bool {
    true
}

fn drained_counts(drained: &Drained) -> Vec<usize> {
    let mut counts: Vec<usize> = drained
        .by_leader
        .values()
        .flatten()
        .map(ProducerBatch::record_count)
        .collect();
    counts.sort_unstable();
    counts
}

#[test]
fn batches_fill_up_to_batch_size() {
    let mut acc = Accumulator::new(config(400, 60_000));
    let first = append(&mut acc, "t", 0);
    assert_eq!((first.new_batch, first.batch_full), (true, false));
    // The batch header (61) plus three ~110-byte records fit in 400; a fourth does not.
    for _ in 0..2 {
        assert!(!append(&mut acc, "t", 0).new_batch);
    }
    let fourth = append(&mut acc, "t", 0);
    assert_eq!((fourth.new_batch, fourth.batch_full), (true, true));
    let drained = acc.drain(Instant::now(), leader_zero, any_slot, 1 << 20);
    assert_eq!(
        drained_counts(&drained),
        [3],
        "only the full batch is ready"
    );
    assert!(drained.next_wake.is_none(), "partition busy: no deadline");
}

#[test]
fn a_new_batch_has_room_for_what_the_last_one_held() {
    let mut acc = Accumulator::new(config(400, 50));
    let room = |acc: &Accumulator| {
        acc.topics["t"][&0]
            .batches
            .back()
            .map(ProducerBatch::capacity)
            .unwrap()
    };
    // The partition's first batch: room for its first record.
    append(&mut acc, "t", 0);
    assert_eq!(room(&acc), BATCH_OVERHEAD + 110);
    // The fourth record starts a second batch, with room for what the full first one held.
    for _ in 0..3 {
        append(&mut acc, "t", 0);
    }
    let full = acc.topics["t"][&0].batches[0].estimated_size();
    assert!(full > 300, "{full}");
    assert_eq!(room(&acc), full);
    // Both go out, one at a time (the second after its linger).
    let later = Instant::now() + Duration::from_millis(60);
    for expected in [3, 1] {
        let drained = acc.drain(later, leader_zero, any_slot, 1 << 20);
        assert_eq!(drained_counts(&drained), [expected]);
        for batch in drained.by_leader.into_values().flatten() {
            acc.finish(&batch.key(), Finished::Acked);
        }
    }
    // The last one held a single record: the next starts small again.
    append(&mut acc, "t", 0);
    assert_eq!(room(&acc), BATCH_OVERHEAD + 110);
}

#[test]
fn linger_and_flush_make_batches_ready() {
    let mut acc = Accumulator::new(config(16_384, 50));
    append(&mut acc, "t", 0);
    let now = Instant::now();
    let drained = acc.drain(now, leader_zero, any_slot, 1 << 20);
    assert!(drained.by_leader.is_empty());
    assert!(drained.next_wake.is_some_and(|w| w > now));
    let later = now + Duration::from_millis(60);
    assert_eq!(
        drained_counts(&acc.drain(later, leader_zero, any_slot, 1 << 20)),
        [1]
    );

    append(&mut acc, "t", 1);
    let mark = acc.begin_flush();
    assert!(!acc.flushed(mark));
    let drained = acc.drain(Instant::now(), leader_zero, any_slot, 1 << 20);
    assert_eq!(drained_counts(&drained), [1]);
    for batch in drained.by_leader.into_values().flatten() {
        acc.finish(&batch.key(), Finished::Acked);
    }
    assert!(!acc.flushed(mark), "partition 0's batch is still out");
}

#[test]
fn one_batch_per_partition_out_and_sequences_in_order() {
    let mut acc = Accumulator::new(config(200, 0));
    for _ in 0..3 {
        append(&mut acc, "t", 0);
    }
    let now = Instant::now();
    let mut first = acc.drain(now, leader_zero, any_slot, 1 << 20);
    assert_eq!(drained_counts(&first), [1]);
    assert!(acc
        .drain(now, leader_zero, any_slot, 1 << 20)
        .by_leader
        .is_empty());
    let batch = first.by_leader.remove(&0).unwrap().pop().unwrap();
    assert_eq!(batch.base_sequence, Some(0));
    // A retry goes first again, with its sequence kept.
    acc.requeue(batch, now);
    let mut again = acc.drain(now, leader_zero, any_slot, 1 << 20);
    let batch = again.by_leader.remove(&0).unwrap().pop().unwrap();
    assert_eq!(batch.base_sequence, Some(0));
    acc.finish(&batch.key(), Finished::Acked);
    let mut second = acc.drain(now, leader_zero, any_slot, 1 << 20);
    let batch = second.by_leader.remove(&0).unwrap().pop().unwrap();
    assert_eq!(batch.base_sequence, Some(1));
    // The broker refused it: the next batch reuses its sequence.
    acc.finish(&batch.key(), Finished::Refused);
    let mut third = acc.drain(now, leader_zero, any_slot, 1 << 20);
    let batch = third.by_leader.remove(&0).unwrap().pop().unwrap();
    assert_eq!(batch.base_sequence, Some(1));
}

#[test]
fn unknown_leaders_and_request_limit() {
    let mut acc = Accumulator::new(config(16_384, 0));
    for p in 0..3 {
        append(&mut acc, "t", p);
    }
    append(&mut acc, "u", 0);
    let leaders = |topic: &str, _: i32| (topic == "t").then_some(1);
    let drained = acc.drain(Instant::now(), leaders, any_slot, 400);
    assert_eq!(drained.unknown_leaders.len(), 1);
    // Each batch is ~171 bytes: two fit in a 400-byte request.
    assert_eq!(drained_counts(&drained), [1, 1]);
}

#[test]
fn old_batches_expire_unsent() {
    let mut acc = Accumulator::new(AccumulatorConfig {
        delivery_timeout: Duration::from_millis(10),
        ..config(16_384, 0)
    });
    append(&mut acc, "t", 0);
    let drained = acc.drain(
        Instant::now() + Duration::from_millis(20),
        |_, _| None,
        any_slot,
        1 << 20,
    );
    assert_eq!(drained.expired.len(), 1);
    assert!(drained.unknown_leaders.is_empty());
    acc.finish(&drained.expired[0].key(), Finished::Failed);
    assert!(acc.is_empty());
}

#[test]
fn sequences_wrap_like_kafka() {
    assert_eq!(next_sequence(5, 3), 8);
    assert_eq!(next_sequence(i32::MAX, 1), 0);
    assert_eq!(next_sequence(i32::MAX - 1, 3), 1);
}

#[test]
fn a_batch_expiring_while_waiting_does_not_free_the_partition() {
    let mut acc = Accumulator::new(AccumulatorConfig {
        delivery_timeout: Duration::from_millis(10),
        ..config(200, 0)
    });
    append(&mut acc, "t", 0);
    // The second batch is younger than the delivery timeout, the first one is not.
    std::thread::sleep(Duration::from_millis(15));
    append(&mut acc, "t", 0);
    append(&mut acc, "t", 0);
    let now = Instant::now();
    let mut drained = acc.drain(now, leader_zero, any_slot, 1 << 20);
    assert_eq!(drained.expired.len(), 1);
    let out = drained.by_leader.remove(&0).unwrap().pop().unwrap();
    // The sink fails the expired batch: the batch in flight still holds the partition.
    acc.finish(&drained.expired[0].key(), Finished::Refused);
    assert!(acc
        .drain(now, leader_zero, any_slot, 1 << 20)
        .by_leader
        .is_empty());
    acc.finish(&out.key(), Finished::Acked);
    let next = acc
        .drain(now, leader_zero, any_slot, 1 << 20)
        .by_leader
        .remove(&0)
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(next.base_sequence, Some(out.base_sequence.unwrap() + 1));
}

/// Takes partition t-0's one drained batch, if any.
fn take_one(acc: &mut Accumulator, now: Instant) -> Option<ProducerBatch> {
    let mut drained = acc.drain(now, leader_zero, any_slot, 1 << 20);
    let batch = drained.by_leader.remove(&0)?.pop();
    assert!(drained.by_leader.is_empty());
    batch
}

#[test]
fn several_batches_out_and_an_orderly_recovery() {
    let mut acc = Accumulator::new(AccumulatorConfig {
        max_in_flight: 3,
        ..config(200, 0)
    });
    for _ in 0..5 {
        append(&mut acc, "t", 0);
    }
    let now = Instant::now();
    let mut out: Vec<ProducerBatch> = (0..3).map(|_| take_one(&mut acc, now).unwrap()).collect();
    let sequences: Vec<_> = out.iter().map(|b| b.base_sequence).collect();
    assert_eq!(sequences, [Some(0), Some(1), Some(2)]);
    assert!(take_one(&mut acc, now).is_none(), "three out at most");

    // The first comes back unsent; the two after it are refused for the gap.
    for mut batch in out.drain(..) {
        batch.attempts += 1;
        if batch.base_sequence != Some(0) {
            assert!(acc.after_gap(&batch));
        }
        acc.requeue(batch, now);
        if acc.queue("t", 0).in_flight.is_empty() {
            break;
        }
        assert!(
            take_one(&mut acc, now).is_none(),
            "nothing new while recovering"
        );
    }
    // They go again one at a time, in order, with their numbers.
    for sequence in 0..2 {
        let batch = take_one(&mut acc, now).unwrap();
        assert_eq!(batch.base_sequence, Some(sequence));
        assert!(
            take_one(&mut acc, now).is_none(),
            "a resent batch goes alone"
        );
        acc.finish(&batch.key(), Finished::Acked);
    }
    // The last one resent, fresh batches may follow it out.
    let third = take_one(&mut acc, now).unwrap();
    assert_eq!(third.base_sequence, Some(2));
    let fourth = take_one(&mut acc, now).unwrap();
    assert_eq!(fourth.base_sequence, Some(3));
    acc.finish(&third.key(), Finished::Acked);

    // Two fresh batches out together; the first is refused for good: the second is
    // renumbered into its place.
    let mut fifth = take_one(&mut acc, now).unwrap();
    assert_eq!(
        (fourth.base_sequence, fifth.base_sequence),
        (Some(3), Some(4))
    );
    acc.finish(&fourth.key(), Finished::Refused);
    assert!(acc.after_gap(&fifth));
    fifth.attempts += 1;
    acc.requeue(fifth, now);
    let fifth = take_one(&mut acc, now).unwrap();
    assert_eq!(fifth.base_sequence, Some(3));
    acc.finish(&fifth.key(), Finished::Acked);
    assert!(acc.is_empty());
    // A refusal of the next batch in line is not a gap.
    append(&mut acc, "t", 0);
    let sixth = take_one(&mut acc, Instant::now()).unwrap();
    assert!(!acc.after_gap(&sixth));
}

#[test]
fn a_batch_started_behind_one_out_says_so() {
    let mut acc = Accumulator::new(AccumulatorConfig {
        max_in_flight: 5,
        ..config(1 << 20, 0)
    });
    assert!(!append(&mut acc, "t", 0).behind, "nothing out yet");
    let now = Instant::now();
    let first = take_one(&mut acc, now).unwrap();
    let second = append(&mut acc, "t", 0);
    assert!(second.new_batch && second.behind);
    // The records after it join its batch while it waits.
    assert!(!append(&mut acc, "t", 0).new_batch);
    assert!(
        !append(&mut acc, "t", 1).behind,
        "other partitions are not behind"
    );
    acc.finish(&first.key(), Finished::Acked);
    let drained = acc.drain(Instant::now(), leader_zero, any_slot, 1 << 20);
    assert_eq!(drained_counts(&drained), [1, 2]);
}

#[test]
fn a_batch_of_unknown_fate_restarts_the_numbering_under_the_next_epoch() {
    let mut acc = Accumulator::new(AccumulatorConfig {
        max_in_flight: 5,
        ..config(200, 0)
    });
    for _ in 0..4 {
        append(&mut acc, "t", 0);
    }
    let now = Instant::now();
    let first = take_one(&mut acc, now).unwrap();
    let mut second = take_one(&mut acc, now).unwrap();
    let stamps = [first.base_sequence, second.base_sequence];
    assert_eq!(stamps, [Some(0), Some(1)]);
    assert_eq!((first.epoch_bump, second.epoch_bump), (0, 0));
    // The first fails with its fate unknown (an unexplained sequence error, or timed out
    // after being sent); the second is refused for the gap and comes back.
    acc.finish(&first.key(), Finished::Failed);
    assert!(
        take_one(&mut acc, now).is_none(),
        "nothing new while one is out"
    );
    assert!(acc.after_gap(&second));
    second.attempts += 1;
    acc.requeue(second, now);
    // Everything after the failed batch is numbered from 0 under the next epoch.
    let second = take_one(&mut acc, now).unwrap();
    assert_eq!((second.epoch_bump, second.base_sequence), (1, Some(0)));
    acc.finish(&second.key(), Finished::Acked);
    let third = take_one(&mut acc, now).unwrap();
    assert_eq!((third.epoch_bump, third.base_sequence), (1, Some(1)));
    let fourth = take_one(&mut acc, now).unwrap();
    assert_eq!((fourth.epoch_bump, fourth.base_sequence), (1, Some(2)));
    // A batch refused outright hands its numbers on, within the epoch.
    acc.finish(&third.key(), Finished::Refused);
    acc.finish(&fourth.key(), Finished::Failed);
    append(&mut acc, "t", 0);
    let fifth = take_one(&mut acc, Instant::now()).unwrap();
    assert_eq!((fifth.epoch_bump, fifth.base_sequence), (2, Some(0)));
    acc.finish(&fifth.key(), Finished::Acked);
    assert!(acc.is_empty());
}

#[test]
fn a_batch_numbered_under_an_earlier_epoch_bumps_nothing_more() {
    let mut acc = Accumulator::new(AccumulatorConfig {
        max_in_flight: 5,
        ..config(200, 0)
    });
    for _ in 0..3 {
        append(&mut acc, "t", 0);
    }
    let now = Instant::now();
    let first = take_one(&mut acc, now).unwrap();
    let mut second = take_one(&mut acc, now).unwrap();
    // The first times out after being sent; the second comes back unsent and goes again
    // first in line, still under the old numbering (it was stamped before the bump).
    acc.finish(&first.key(), Finished::Failed);
    second.attempts += 1;
    acc.requeue(second, now);
    let second = take_one(&mut acc, now).unwrap();
    assert_eq!((second.epoch_bump, second.base_sequence), (1, Some(0)));
    let third = take_one(&mut acc, now).unwrap();
    assert_eq!((third.epoch_bump, third.base_sequence), (1, Some(1)));
    // An old-epoch key failing late changes nothing.
    let mut stale = first.key();
    stale.epoch_bump = 0;
    acc.finish(&stale, Finished::Failed);
    acc.finish(&second.key(), Finished::Acked);
    acc.finish(&third.key(), Finished::Acked);
    append(&mut acc, "t", 0);
    let fourth = take_one(&mut acc, Instant::now()).unwrap();
    assert_eq!((fourth.epoch_bump, fourth.base_sequence), (1, Some(2)));
}
