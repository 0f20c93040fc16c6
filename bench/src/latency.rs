//! End-to-end latency: send-time stamps carried in record values, paced sending, and
//! percentiles computed by sorting the samples.

use std::time::{Duration, Instant};

/// Bytes of the stamp at the start of every latency record's value.
pub const STAMP_LEN: usize = 8;

/// A value of `size` bytes (at least [`STAMP_LEN`]) whose first bytes hold the nanoseconds
/// from `base` to now: when it is handed to the producer.
pub fn stamped(base: Instant, size: usize) -> Vec<u8> {
    let mut value = vec![b'x'; size.max(STAMP_LEN)];
    let nanos = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
    value[..STAMP_LEN].copy_from_slice(&nanos.to_le_bytes());
    value
}

/// Nanoseconds from the stamp in `value` (written by [`stamped`] with the same `base`) to
/// now; `None` for a value without a stamp.
pub fn since_stamp(base: Instant, value: Option<&[u8]>) -> Option<u64> {
    let stamp = u64::from_le_bytes(value?.get(..STAMP_LEN)?.try_into().ok()?);
    let now = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
    Some(now.saturating_sub(stamp))
}

/// Sends at a fixed rate: how many records should have been sent by now.
pub struct Pacer {
    start: Instant,
    rate: f64,
    total: u64,
}

impl Pacer {
    /// `total` records at `rate` records/s, starting now.
    pub fn new(rate: u64, total: u64) -> Self {
        Pacer {
            start: Instant::now(),
            rate: rate as f64,
            total,
        }
    }

    /// Records due by now (at most `total`).
    pub fn due(&self) -> u64 {
        ((self.start.elapsed().as_secs_f64() * self.rate) as u64).min(self.total)
    }

    /// How long to wait between checks of [`Pacer::due`].
    pub const TICK: Duration = Duration::from_millis(1);

    /// Sends `total` records at `rate` records/s from the calling thread, which it blocks:
    /// `send` is called once per due record, `tick` once per check, and the thread sleeps
    /// [`Pacer::TICK`] with `std::thread::sleep` between checks. Every client is paced by
    /// this one loop, so all see the same bursts (an async timer would round each tick up
    /// to the next millisecond and make the bursts larger).
    pub fn run<E>(
        rate: u64,
        total: u64,
        mut send: impl FnMut() -> Result<(), E>,
        mut tick: impl FnMut(),
    ) -> Result<(), E> {
        let pacer = Pacer::new(rate, total);
        let mut sent = 0;
        while sent < total {
            let due = pacer.due();
            while sent < due {
                send()?;
                sent += 1;
            }
            tick();
            std::thread::sleep(Pacer::TICK);
        }
        Ok(())
    }
}

/// Latency percentiles of one run.
#[derive(Clone, Copy, Debug)]
pub struct Percentiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest sample.
    pub max: Duration,
}

/// Percentiles of `samples` (nanoseconds); `None` when there are none.
pub fn percentiles(mut samples: Vec<u64>) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
        Duration::from_nanos(samples[rank - 1])
    };
    Some(Percentiles {
        count: samples.len(),
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: at(1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_rank() {
        let p = percentiles((1..=1000).collect()).expect("samples");
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50, Duration::from_nanos(500));
        assert_eq!(p.p99, Duration::from_nanos(990));
        assert_eq!(p.p999, Duration::from_nanos(999));
        assert_eq!(p.max, Duration::from_nanos(1000));
        assert!(percentiles(Vec::new()).is_none());
    }

    #[test]
    fn stamp_round_trip() {
        let base = Instant::now();
        let value = stamped(base, 100);
        assert_eq!(value.len(), 100);
        assert!(since_stamp(base, Some(&value)).is_some());
        assert!(since_stamp(base, Some(b"short")).is_none());
        assert!(since_stamp(base, None).is_none());
    }
}
