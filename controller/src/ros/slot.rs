//! [`LatestWins`]: a preallocated, lock-free "latest value wins" slot for a
//! vector of f64 with a receive stamp, written by one thread and read by
//! another (a sequence lock over atomics), like ros2_control's
//! RealtimeBuffer. What it guarantees: the reader always gets the newest
//! complete vector (never a torn mix of two writes, never an older one
//! after a newer one); older values are overwritten, not queued; the writer
//! never waits for the reader. The DDS thread writes each observation as it
//! arrives; the control thread reads the newest one at its tick. (A queue
//! would be wrong here: after a burst the controller must plan on the
//! newest observation, not work through stale ones; and the observation's
//! size is set at run time, up to 65,536 values, so it is not a
//! fixed-capacity value to pass through a queue by copy.)
//!
//! Neither side blocks or allocates: a write is `len + 3` atomic stores, a
//! read copies `len` values and retries only if a write overlapped it.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One snapshot read from a [`LatestWins`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshot {
    /// Number of values the writer offered (may exceed the capacity: then
    /// only the first `capacity` were stored, and the reader must refuse it).
    pub len: usize,
    /// When the writer stored it, relative to the cell's epoch.
    pub stamp: Duration,
    /// Write counter (0 = never written).
    pub seq: u64,
}

/// Single-writer, multi-reader latest-value cell of fixed capacity.
pub struct LatestWins {
    seq: AtomicU64,
    len: AtomicU64,
    stamp_ns: AtomicU64,
    writes: AtomicU64,
    data: Box<[AtomicU64]>,
    epoch: Instant,
}

impl LatestWins {
    /// Allocates `capacity` f64 slots (the only allocation).
    pub fn new(capacity: usize, epoch: Instant) -> Self {
        LatestWins {
            seq: AtomicU64::new(0),
            len: AtomicU64::new(0),
            stamp_ns: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            data: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            epoch,
        }
    }

    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// The instant stamps are measured from.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Store `values` stamped `at`. Must be called from one thread only.
    /// Cost: `values.len()` atomic stores; never allocates.
    pub fn write(&self, values: &[f64], at: Instant) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (slot, v) in self.data.iter().zip(values) {
            slot.store(v.to_bits(), Ordering::Relaxed);
        }
        self.len.store(values.len() as u64, Ordering::Relaxed);
        let ns = at.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.stamp_ns.store(ns, Ordering::Relaxed);
        let w = self.writes.load(Ordering::Relaxed) + 1;
        self.writes.store(w, Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// Copy the newest value into `out` (up to `out.len()` values) and
    /// return its length, stamp and write count. Never allocates; spins only
    /// while a write is in progress.
    pub fn read(&self, out: &mut [f64]) -> Snapshot {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            for (o, slot) in out.iter_mut().zip(self.data.iter()) {
                *o = f64::from_bits(slot.load(Ordering::Relaxed));
            }
            let len = self.len.load(Ordering::Relaxed) as usize;
            let stamp = Duration::from_nanos(self.stamp_ns.load(Ordering::Relaxed));
            let seq = self.writes.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return Snapshot { len, stamp, seq };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn reads_what_was_written() {
        let epoch = Instant::now();
        let cell = LatestWins::new(3, epoch);
        let mut out = [0.0; 3];
        assert_eq!(cell.read(&mut out).seq, 0);
        cell.write(&[1.0, -2.0, 3.5], epoch + Duration::from_millis(5));
        let s = cell.read(&mut out);
        assert_eq!(out, [1.0, -2.0, 3.5]);
        assert_eq!(s.len, 3);
        assert_eq!(s.seq, 1);
        assert_eq!(s.stamp, Duration::from_millis(5));
    }

    #[test]
    fn oversized_write_reports_true_length() {
        let epoch = Instant::now();
        let cell = LatestWins::new(2, epoch);
        cell.write(&[1.0, 2.0, 3.0, 4.0], epoch);
        let mut out = [0.0; 2];
        assert_eq!(cell.read(&mut out).len, 4);
        assert_eq!(out, [1.0, 2.0]);
    }

    /// A reader never sees a torn vector: every write stores n copies of one
    /// number, so a mix of two writes would show up as unequal elements.
    #[test]
    fn no_torn_reads_under_concurrent_writes() {
        let cell = Arc::new(LatestWins::new(64, Instant::now()));
        let w = cell.clone();
        let writer = std::thread::spawn(move || {
            let mut buf = [0.0; 64];
            for i in 0..20_000 {
                buf.iter_mut().for_each(|b| *b = i as f64);
                w.write(&buf, Instant::now());
            }
        });
        let mut out = [0.0; 64];
        for _ in 0..20_000 {
            cell.read(&mut out);
            assert!(out.iter().all(|&x| x == out[0]), "torn read: {out:?}");
        }
        writer.join().unwrap();
    }
}
