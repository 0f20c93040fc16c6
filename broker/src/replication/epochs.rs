//! The leader-epoch cache of a partition: for each leader epoch, the offset of its first
//! record. It answers OffsetForLeaderEpoch ("where does epoch E end in your log?"), which a
//! follower asks a new leader before fetching, and truncates to the answer, so that a tail
//! written under a deposed leader never survives (KIP-101, KIP-279).
//!
//! Kept beside the log as Kafka's `leader-epoch-checkpoint` (version line, count line,
//! then `epoch offset` lines).

use std::path::Path;

/// The answer for an epoch the log knows nothing about.
pub(crate) const UNDEFINED_EPOCH: i32 = -1;
/// The end offset that goes with [`UNDEFINED_EPOCH`].
pub(crate) const UNDEFINED_OFFSET: i64 = -1;

/// File name beside the partition's segments.
pub(crate) const CHECKPOINT: &str = "leader-epoch-checkpoint";

/// Epochs and their start offsets, both strictly increasing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    /// The latest epoch and its start offset.
    pub(crate) fn latest(&self) -> Option<(i32, i64)> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start` (a leader taking over at its log end, or a
    /// follower appending the first batch of an epoch). An epoch not newer than the latest
    /// is ignored; entries starting at or after `start` are dropped first, since the log
    /// there is being rewritten.
    pub(crate) fn assign(&mut self, epoch: i32, start: i64) {
        if self.latest().is_some_and(|(latest, _)| epoch <= latest) {
            return;
        }
        self.entries.retain(|&(_, s)| s < start);
        self.entries.push((epoch, start));
    }

    /// Where `epoch` ends in a log whose end offset is `log_end`: the largest epoch not
    /// above it, and the start of the next epoch (or `log_end` for the latest). For an
    /// epoch older than every one here, that epoch and where the oldest here starts (as
    /// Kafka answers: nothing of it can be in this log past that point);
    /// ([`UNDEFINED_EPOCH`], [`UNDEFINED_OFFSET`]) when this log has no epochs at all.
    pub(crate) fn end_offset_for(&self, epoch: i32, log_end: i64) -> (i32, i64) {
        let undefined = (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        if epoch == UNDEFINED_EPOCH {
            return undefined;
        }
        let Some(floor) = self.entries.iter().rposition(|&(e, _)| e <= epoch) else {
            return self
                .entries
                .first()
                .map_or(undefined, |&(_, start)| (epoch, start));
        };
        let found = self.entries[floor].0;
        match self.entries.get(floor + 1) {
            Some(&(_, next_start)) => (found, next_start),
            None => (found, log_end),
        }
    }

    /// Where a follower whose log ends at `log_end` (high watermark `high_watermark`) cuts
    /// it, given the leader's answer `(epoch, end)` to "where does my latest epoch end?"
    /// (KIP-101, KIP-279): the leader's end of that epoch, or, when the leader answered an
    /// older epoch (it never had ours), the smaller of the leader's end and ours for that
    /// older epoch; the high watermark when the leader knows no epoch this old.
    pub(crate) fn truncation_point(
        &self,
        log_end: i64,
        high_watermark: i64,
        answer: (i32, i64),
    ) -> i64 {
        let (epoch, end) = answer;
        if epoch == UNDEFINED_EPOCH || end == UNDEFINED_OFFSET {
            return high_watermark.min(log_end);
        }
        let ours = match self.latest() {
            Some((latest, _)) if latest == epoch => log_end,
            _ => self.end_offset_for(epoch, log_end).1,
        };
        let ours = if ours == UNDEFINED_OFFSET {
            log_end
        } else {
            ours
        };
        end.min(ours).min(log_end)
    }

    /// Drops the epochs that start at or after `end` (the log was truncated there).
    pub(crate) fn truncate_from_end(&mut self, end: i64) {
        self.entries.retain(|&(_, s)| s < end);
    }

    /// Drops what lies before `start` (records deleted from the log start); the epoch in
    /// force at `start` now starts there.
    pub(crate) fn truncate_from_start(&mut self, start: i64) {
        let Some(keep) = self.entries.iter().rposition(|&(_, s)| s <= start) else {
            return;
        };
        self.entries.drain(..keep);
        if let Some(first) = self.entries.first_mut() {
            first.1 = first.1.max(start);
        }
    }

    /// The checkpoint file's contents.
    pub(crate) fn to_checkpoint(&self) -> String {
        let mut text = format!("0\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        text
    }

    /// Reads a checkpoint; a malformed one is an error naming the line.
    pub(crate) fn from_checkpoint(text: &str) -> Result<EpochCache, String> {
        let mut lines = text.lines();
        match lines.next().map(str::trim) {
            Some("0") => {}
            other => return Err(format!("unknown checkpoint version {other:?}")),
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or("missing entry count")?;
        let mut cache = EpochCache::default();
        for (i, line) in lines.enumerate() {
            let mut fields = line.split_whitespace();
            let (Some(epoch), Some(start), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("line {}: expected `epoch offset`", i + 3));
            };
            let (Ok(epoch), Ok(start)) = (epoch.parse::<i32>(), start.parse::<i64>()) else {
                return Err(format!("line {}: not numbers", i + 3));
            };
            if cache.latest().is_some_and(|(e, s)| epoch <= e || start < s) {
                return Err(format!("line {}: epochs and offsets must increase", i + 3));
            }
            cache.entries.push((epoch, start));
        }
        if cache.entries.len() != count {
            return Err(format!(
                "{} entries where the count says {count}",
                cache.entries.len()
            ));
        }
        Ok(cache)
    }

    /// Loads the checkpoint in `dir` (an empty cache when there is none).
    pub(crate) fn load(dir: &Path) -> Result<EpochCache, String> {
        match std::fs::read_to_string(dir.join(CHECKPOINT)) {
            Ok(text) => EpochCache::from_checkpoint(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(EpochCache::default()),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache::default();
        for &(e, s) in entries {
            c.assign(e, s);
        }
        c
    }

    #[test]
    fn end_offsets_of_epochs() {
        let c = cache(&[(0, 0), (2, 10), (5, 30)]);
        assert_eq!(c.end_offset_for(0, 50), (0, 10));
        // Epoch 1 was never led here: it ends where the next known one starts.
        assert_eq!(c.end_offset_for(1, 50), (0, 10));
        assert_eq!(c.end_offset_for(2, 50), (2, 30));
        assert_eq!(c.end_offset_for(5, 50), (5, 50));
        assert_eq!(c.end_offset_for(9, 50), (5, 50));
        assert_eq!(
            c.end_offset_for(-1, 50),
            (UNDEFINED_EPOCH, UNDEFINED_OFFSET)
        );
        // Older than every epoch here: nothing of it lies past where the oldest starts.
        let later = cache(&[(3, 100)]);
        assert_eq!(later.end_offset_for(2, 150), (2, 100));
        assert_eq!(
            cache(&[]).end_offset_for(2, 150),
            (UNDEFINED_EPOCH, UNDEFINED_OFFSET)
        );
        // A follower whose log starts in epoch 2 cuts it all when the leader's starts in 3.
        let follower = cache(&[(2, 100)]);
        assert_eq!(
            follower.truncation_point(130, 130, later.end_offset_for(2, 150)),
            100
        );
    }

    #[test]
    fn assignments_and_truncation() {
        let mut c = cache(&[(0, 0), (2, 10)]);
        c.assign(1, 20);
        assert_eq!(c.latest(), Some((2, 10)), "an older epoch is ignored");
        c.assign(3, 5);
        assert_eq!(c, cache(&[(0, 0), (3, 5)]), "the log is rewritten from 5");
        let mut c = cache(&[(0, 0), (2, 10), (5, 30)]);
        c.truncate_from_end(30);
        assert_eq!(c, cache(&[(0, 0), (2, 10)]));
        c.truncate_from_start(12);
        assert_eq!(c, cache(&[(2, 12)]));
        c.truncate_from_start(3);
        assert_eq!(
            c,
            cache(&[(2, 12)]),
            "nothing before the first entry to drop"
        );
    }

    #[test]
    fn followers_cut_where_they_diverge_from_the_leader() {
        // We led epoch 2 from 10 and wrote up to 25; the new leader had epoch 2 to 20.
        let ours = cache(&[(0, 0), (2, 10)]);
        assert_eq!(ours.truncation_point(25, 15, (2, 20)), 20);
        // It has more of epoch 2 than we do: nothing to cut.
        assert_eq!(ours.truncation_point(25, 15, (2, 40)), 25);
        // It never had epoch 2: its epoch 0 ends at 8, before ours ends (10).
        assert_eq!(ours.truncation_point(25, 15, (0, 8)), 8);
        // Its epoch 0 ends later than ours: ours bounds the cut.
        assert_eq!(ours.truncation_point(25, 15, (0, 12)), 10);
        // It knows nothing that old: back to the high watermark.
        assert_eq!(
            ours.truncation_point(25, 15, (UNDEFINED_EPOCH, UNDEFINED_OFFSET)),
            15
        );
    }

    #[test]
    fn checkpoints_round_trip_and_bad_ones_are_named() {
        let c = cache(&[(0, 0), (4, 17)]);
        assert_eq!(c.to_checkpoint(), "0\n2\n0 0\n4 17\n");
        assert_eq!(EpochCache::from_checkpoint(&c.to_checkpoint()).unwrap(), c);
        assert!(EpochCache::from_checkpoint("1\n0\n").is_err());
        assert!(EpochCache::from_checkpoint("0\n2\n0 0\n").is_err());
        assert!(EpochCache::from_checkpoint("0\n2\n3 0\n1 5\n").is_err());
        assert!(EpochCache::from_checkpoint("0\n1\nx y\n").is_err());
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(EpochCache::load(dir.path()).unwrap(), EpochCache::default());
    }
}
