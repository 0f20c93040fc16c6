//! The partition moves the general sticky algorithm made during one assignment (Java's
//! `PartitionMovements`), so a later move between the same two members in the other
//! direction sends back a partition that already moved instead of moving a second one:
//! partitions of a topic do not flow both ways between two members.

use std::collections::{BTreeMap, BTreeSet};

use super::TopicPartition;

/// Net moves so far: each moved partition's first owner and current owner.
#[derive(Debug, Default)]
pub(super) struct Movements {
    /// Partition to (from, to).
    by_partition: BTreeMap<TopicPartition, (String, String)>,
    /// Topic to (from, to) to the partition indexes that moved that way.
    by_topic: BTreeMap<String, BTreeMap<(String, String), BTreeSet<i32>>>,
}

impl Movements {
    /// Records that `tp` moved from `from` to `to`; a partition moving back to where it
    /// started has not moved at all.
    pub(super) fn record(&mut self, tp: &TopicPartition, from: &str, to: &str) {
        match self.forget(tp) {
            Some((start, _)) if start == to => {}
            Some((start, _)) => self.remember(tp, start, to.to_owned()),
            None => self.remember(tp, from.to_owned(), to.to_owned()),
        }
    }

    /// The partition to move when `tp` should move from `from` to `to`: if partitions of
    /// its topic already moved from `to` to `tp`'s first owner, one of those goes back
    /// instead.
    pub(super) fn partition_to_move(
        &self,
        tp: &TopicPartition,
        from: &str,
        to: &str,
    ) -> TopicPartition {
        let Some(topic_moves) = self.by_topic.get(&tp.0) else {
            return tp.clone();
        };
        let from = self
            .by_partition
            .get(tp)
            .map_or(from, |(start, _)| start.as_str());
        let reverse = (to.to_owned(), from.to_owned());
        match topic_moves.get(&reverse).and_then(BTreeSet::first) {
            Some(partition) => (tp.0.clone(), *partition),
            None => tp.clone(),
        }
    }

    fn forget(&mut self, tp: &TopicPartition) -> Option<(String, String)> {
        let pair = self.by_partition.remove(tp)?;
        if let Some(topic_moves) = self.by_topic.get_mut(&tp.0) {
            if let Some(partitions) = topic_moves.get_mut(&pair) {
                partitions.remove(&tp.1);
                if partitions.is_empty() {
                    topic_moves.remove(&pair);
                }
            }
            if topic_moves.is_empty() {
                self.by_topic.remove(&tp.0);
            }
        }
        Some(pair)
    }

    fn remember(&mut self, tp: &TopicPartition, from: String, to: String) {
        let pair = (from, to);
        self.by_topic
            .entry(tp.0.clone())
            .or_default()
            .entry(pair.clone())
            .or_default()
            .insert(tp.1);
        self.by_partition.insert(tp.clone(), pair);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        ("t".to_owned(), p)
    }

    #[test]
    fn a_reverse_move_sends_back_a_moved_partition() {
        let mut moves = Movements::default();
        assert_eq!(moves.partition_to_move(&tp(0), "a", "b"), tp(0));
        moves.record(&tp(0), "a", "b");
        // Moving t-5 from b to a sends t-0 back instead.
        assert_eq!(moves.partition_to_move(&tp(5), "b", "a"), tp(0));
        moves.record(&tp(0), "b", "a");
        assert!(moves.by_partition.is_empty() && moves.by_topic.is_empty());
    }

    #[test]
    fn chained_moves_keep_the_first_owner() {
        let mut moves = Movements::default();
        moves.record(&tp(1), "a", "b");
        moves.record(&tp(1), "b", "c");
        assert_eq!(moves.by_partition[&tp(1)], ("a".to_owned(), "c".to_owned()));
        // Moving any partition of t from c to a sends t-1 home.
        assert_eq!(moves.partition_to_move(&tp(7), "c", "a"), tp(1));
    }
}
