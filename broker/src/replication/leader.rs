//! What a partition's leader tracks of its followers: how far each has fetched, when each
//! was last caught up, the high watermark that follows from the ISR, and the ISR changes
//! to ask the controller for. Sans-IO: fetches and clock readings in, decisions out.
//!
//! The rules are Kafka's: a follower's fetch offset is its log end; it is caught up when it
//! fetches from the leader's log end; the high watermark is the smallest log end in the
//! ISR (the leader's included) and never moves back while one leader leads; a follower
//! that has all of this epoch's records up to the high watermark joins the ISR; one not
//! caught up for `replica.lag.time.max.ms` leaves it.

use std::collections::{BTreeMap, BTreeSet};

/// One follower's progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Follower {
    /// Offset of its next fetch: everything below is in its log.
    log_end: i64,
    /// Last time (ms) it fetched from the leader's log end; `None` before it ever did.
    caught_up_at: Option<u64>,
}

/// The leader's view of one partition's replication.
#[derive(Clone, Debug)]
pub(crate) struct LeaderState {
    me: i32,
    /// The ISR as committed in the metadata log.
    isr: Vec<i32>,
    /// Followers this leader asked to add to the ISR, not committed yet. The high
    /// watermark waits for them as for members (Kafka's maximal ISR, KIP-497): once the
    /// controller adds one, it may be elected, so it must hold everything below the high
    /// watermark from the moment it was asked for.
    joining: BTreeSet<i32>,
    /// The partition epoch of the state this leader last took from the metadata: its ISR
    /// requests are guarded by it, so a later one settles them (applied, or dropped).
    partition_epoch: i32,
    followers: BTreeMap<i32, Follower>,
    high_watermark: i64,
    /// Where this leader's epoch starts in the log.
    epoch_start: i64,
    /// When this node became leader (ms): followers get a full lag time from then.
    since: u64,
}

impl LeaderState {
    /// The state of node `me` taking the lead of a partition with `replicas` and `isr`,
    /// its log ending at `log_end` (where its epoch starts) and its high watermark at
    /// `high_watermark`.
    pub(crate) fn new(
        me: i32,
        replicas: &[i32],
        isr: &[i32],
        log_end: i64,
        high_watermark: i64,
        now: u64,
    ) -> LeaderState {
        let followers = replicas
            .iter()
            .filter(|&&r| r != me)
            .map(|&r| {
                (
                    r,
                    Follower {
                        log_end: 0,
                        caught_up_at: None,
                    },
                )
            })
            .collect();
        LeaderState {
            me,
            isr: isr.to_vec(),
            joining: BTreeSet::new(),
            partition_epoch: i32::MIN,
            followers,
            high_watermark: high_watermark.min(log_end),
            epoch_start: log_end,
            since: now,
        }
    }

    /// The high watermark: consumers see records below it; acks=all waits for it.
    pub(crate) fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The ISR as last committed.
    pub(crate) fn isr(&self) -> &[i32] {
        &self.isr
    }

    /// The leader appended: its log now ends at `log_end`. Returns whether the high
    /// watermark moved (an ISR of the leader alone follows its log end).
    pub(crate) fn on_append(&mut self, log_end: i64) -> bool {
        self.advance(log_end)
    }

    /// Follower `id` fetched from `offset` at `now`, the leader's log ending at `log_end`.
    /// Returns whether the high watermark moved, and the ISR to ask for if the follower
    /// should join it.
    pub(crate) fn on_fetch(
        &mut self,
        id: i32,
        offset: i64,
        log_end: i64,
        now: u64,
    ) -> (bool, Option<Vec<i32>>) {
        let Some(follower) = self.followers.get_mut(&id) else {
            return (false, None);
        };
        if offset > log_end {
            // Past this log's end: the follower holds records this leader does not (it has
            // yet to cut them), so this says nothing of what it has of this log.
            return (false, None);
        }
        follower.log_end = offset;
        if offset >= log_end {
            follower.caught_up_at = Some(now);
        }
        let moved = self.advance(log_end);
        let joins =
            !self.isr.contains(&id) && offset >= self.high_watermark && offset >= self.epoch_start;
        let expand = joins.then(|| {
            self.joining.insert(id);
            let mut isr = self.isr.clone();
            isr.push(id);
            isr.sort_unstable();
            isr
        });
        (moved, expand)
    }

    /// The ISR to ask for without the followers not caught up for `lag_max` ms (`None`
    /// when all are fine). The leader always stays. A follower asked into the ISR that lags
    /// as long is not dropped here (the controller may have added it already): the ISR as
    /// it is is asked for instead, and once that settles the follower is no longer waited
    /// for unless it is a member.
    pub(crate) fn shrink(&self, now: u64, lag_max: u64) -> Option<Vec<i32>> {
        let lagging = |id: &i32| {
            *id != self.me
                && self.followers.get(id).is_some_and(|f| {
                    let caught_up = f.caught_up_at.unwrap_or(self.since).max(self.since);
                    now.saturating_sub(caught_up) > lag_max
                })
        };
        if self.isr.iter().any(lagging) {
            return Some(self.isr.iter().copied().filter(|id| !lagging(id)).collect());
        }
        self.joining.iter().any(lagging).then(|| self.isr.clone())
    }

    /// The partition epoch the ISR requests returned from now on are to be guarded by.
    pub(crate) fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    /// The partition's state in the metadata moved to `partition_epoch`: the ISR requests
    /// made before (guarded by an older epoch) are settled, applied or dropped, so the
    /// followers asked for are members now or asked for again at their next fetch.
    pub(crate) fn settled(&mut self, partition_epoch: i32, log_end: i64) -> bool {
        if partition_epoch <= self.partition_epoch {
            return false;
        }
        self.partition_epoch = partition_epoch;
        self.joining.clear();
        self.advance(log_end)
    }

    /// The partition's replicas changed (a reassignment): new followers start from
    /// nothing, removed ones are forgotten.
    pub(crate) fn replicas_changed(&mut self, replicas: &[i32]) {
        self.followers.retain(|id, _| replicas.contains(id));
        self.joining.retain(|id| replicas.contains(id));
        for &r in replicas.iter().filter(|&&r| r != self.me) {
            self.followers.entry(r).or_insert(Follower {
                log_end: 0,
                caught_up_at: None,
            });
        }
    }

    /// The controller committed a new ISR.
    pub(crate) fn isr_changed(&mut self, isr: &[i32], log_end: i64) -> bool {
        self.isr = isr.to_vec();
        self.advance(log_end)
    }

    /// Moves the high watermark to the smallest log end in the ISR and among the
    /// followers asked to join it, never back.
    fn advance(&mut self, log_end: i64) -> bool {
        let lowest = self
            .isr
            .iter()
            .chain(&self.joining)
            .map(|id| {
                if *id == self.me {
                    log_end
                } else {
                    self.followers.get(id).map_or(0, |f| f.log_end)
                }
            })
            .min()
            .unwrap_or(log_end);
        if lowest > self.high_watermark {
            self.high_watermark = lowest;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_watermark_follows_the_slowest_in_sync_replica() {
        let mut s = LeaderState::new(1, &[1, 2, 3], &[1, 2, 3], 0, 0, 0);
        assert!(!s.on_append(10), "followers have nothing yet");
        assert_eq!(s.on_fetch(2, 10, 10, 5), (false, None));
        assert_eq!(s.high_watermark(), 0, "3 has nothing");
        let (moved, expand) = s.on_fetch(3, 6, 10, 6);
        assert!(moved && expand.is_none());
        assert_eq!(s.high_watermark(), 6);
        s.on_fetch(3, 10, 10, 7);
        assert_eq!(s.high_watermark(), 10);
        // It never moves back, even if a follower's fetch offset looks older.
        s.on_fetch(3, 4, 10, 8);
        assert_eq!(s.high_watermark(), 10);
        assert_eq!(s.isr().len(), 3);
    }

    #[test]
    fn a_lagging_follower_leaves_the_isr_and_joins_again_once_caught_up() {
        let mut s = LeaderState::new(1, &[1, 2, 3], &[1, 2, 3], 100, 100, 1_000);
        s.on_append(120);
        s.on_fetch(2, 120, 120, 1_100);
        s.on_fetch(3, 110, 120, 1_100);
        // Within the lag time nobody leaves.
        assert_eq!(s.shrink(1_500, 10_000), None);
        // 2 catches up again and again; 3 never since the leader took over.
        s.on_fetch(2, 120, 120, 11_500);
        assert_eq!(s.shrink(11_500, 10_000), Some(vec![1, 2]));
        assert_eq!(s.high_watermark(), 110, "held back by 3");
        assert!(s.isr_changed(&[1, 2], 120));
        assert_eq!(s.high_watermark(), 120);
        // 3 comes back: it joins once it has reached the high watermark.
        let (_, expand) = s.on_fetch(3, 105, 120, 12_000);
        assert_eq!(expand, None);
        let (_, expand) = s.on_fetch(3, 120, 120, 12_100);
        assert_eq!(expand, Some(vec![1, 2, 3]));
        // Alone, the leader's log end is the high watermark.
        let mut alone = LeaderState::new(1, &[1], &[1], 0, 0, 0);
        assert!(alone.on_append(3));
        assert_eq!(alone.high_watermark(), 3);
    }

    #[test]
    fn a_follower_behind_the_epoch_start_does_not_join() {
        // The leader took over at offset 50; the follower holds only up to 40 of it.
        let mut s = LeaderState::new(1, &[1, 2], &[1], 50, 40, 0);
        assert_eq!(s.high_watermark(), 40);
        let (_, expand) = s.on_fetch(2, 45, 50, 1);
        assert_eq!(expand, None);
        let (_, expand) = s.on_fetch(2, 50, 50, 2);
        assert_eq!(expand, Some(vec![1, 2]));
        // A fetch from past the leader's log end (a tail not cut yet) is no progress.
        assert_eq!(s.on_fetch(2, 60, 50, 3), (false, None));
        // Fetches from nodes that are not replicas are ignored.
        assert_eq!(s.on_fetch(9, 50, 50, 3), (false, None));
        // Until a reassignment makes them one.
        s.replicas_changed(&[1, 2, 9]);
        assert_eq!(s.on_fetch(9, 50, 50, 4), (false, Some(vec![1, 9])));
        s.replicas_changed(&[1, 9]);
        assert_eq!(s.on_fetch(2, 50, 50, 5), (false, None));
    }

    #[test]
    fn a_follower_asked_into_the_isr_holds_the_high_watermark_back_at_once() {
        let mut s = LeaderState::new(1, &[1, 2, 3], &[1, 2], 0, 0, 0);
        s.settled(4, 0);
        s.on_append(10);
        s.on_fetch(2, 10, 10, 1);
        assert_eq!(s.high_watermark(), 10);
        // 3 reaches the high watermark: it is asked into the ISR, and from then on the
        // controller may make it a member (and elect it), so it is waited for.
        let (_, expand) = s.on_fetch(3, 10, 10, 2);
        assert_eq!(expand, Some(vec![1, 2, 3]));
        s.on_append(20);
        s.on_fetch(2, 20, 20, 3);
        assert_eq!(s.high_watermark(), 10, "3 holds only up to 10");
        s.on_fetch(3, 20, 20, 4);
        assert_eq!(s.high_watermark(), 20);
        // One that stops fetching before it is a member: the ISR as it is is asked for,
        // and once the partition's state moves on, 3 is waited for only if it is a member.
        s.on_append(30);
        s.on_fetch(2, 30, 30, 5_000);
        assert_eq!(s.high_watermark(), 20);
        assert_eq!(
            s.shrink(5_000, 1_000),
            Some(vec![1, 2]),
            "3 lags: ask again"
        );
        assert_eq!(s.high_watermark(), 20, "3 may be a member already");
        assert!(!s.settled(4, 30), "the same state settles nothing");
        assert!(s.settled(5, 30), "a later state: 3 was not added");
        assert_eq!(s.high_watermark(), 30);
        // Added meanwhile: a member from then on.
        let (_, expand) = s.on_fetch(3, 30, 30, 5_002);
        assert_eq!(expand, Some(vec![1, 2, 3]));
        s.isr_changed(&[1, 2, 3], 30);
        s.settled(6, 30);
        assert_eq!(s.isr(), [1, 2, 3]);
    }
}
