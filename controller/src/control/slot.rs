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
//! Neither side blocks or allocates. It is a sequence *latch* (two copies,
//! Linux's `seqcount_latch`): the writer updates copy 0 while readers are
//! sent to copy 1, then copy 1 while readers are sent to copy 0, so a
//! write is `2 (len + 3)` atomic stores, and a read copies `len` values
//! from a copy no write is touching. A reader retries only when the writer
//! *completed* a half-write during its read, i.e. the writer is running;
//! it never spins on a writer that was preempted mid-write. That matters
//! once the control thread runs at SCHED_FIFO (`realtime.priority`): with
//! a plain seqlock, a SCHED_FIFO reader that preempts the normal-priority
//! DDS writer mid-write on the same core would spin until the writer
//! migrated to another core or RT throttling stopped the reader.

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

/// One of the two copies.
struct Copy {
    len: AtomicU64,
    stamp_ns: AtomicU64,
    writes: AtomicU64,
    data: Box<[AtomicU64]>,
}

impl Copy {
    fn new(capacity: usize) -> Self {
        Copy {
            len: AtomicU64::new(0),
            stamp_ns: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            data: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// Single-writer, multi-reader latest-value cell of fixed capacity.
pub struct LatestWins {
    /// Half-writes done; readers read copy `seq & 1`.
    seq: AtomicU64,
    copies: [Copy; 2],
    epoch: Instant,
}

impl LatestWins {
    /// Allocates two copies of `capacity` f64 slots (the only allocation).
    pub fn new(capacity: usize, epoch: Instant) -> Self {
        LatestWins {
            seq: AtomicU64::new(0),
            copies: [Copy::new(capacity), Copy::new(capacity)],
            epoch,
        }
    }

    /// Values the cell can hold.
    pub fn capacity(&self) -> usize {
        self.copies[0].data.len()
    }

    /// The instant stamps are measured from.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Store `values` stamped `at`. Must be called from one thread only.
    /// Cost: `2 * values.len()` atomic stores; never allocates.
    pub fn write(&self, values: &[f64], at: Instant) {
        let ns = at.saturating_duration_since(self.epoch).as_nanos() as u64;
        let w = self.copies[0].writes.load(Ordering::Relaxed) + 1;
        let s = self.seq.load(Ordering::Relaxed);
        // s is even: readers use copy 0. Send them to copy 1 (the previous
        // value), update copy 0, send them back, update copy 1.
        for k in 0..2 {
            // Release: the previous half-write is visible before readers
            // switch; the fence keeps the stores below after the switch.
            self.seq.store(s.wrapping_add(k + 1), Ordering::Release);
            fence(Ordering::Release);
            let c = &self.copies[k as usize];
            for (slot, v) in c.data.iter().zip(values) {
                slot.store(v.to_bits(), Ordering::Relaxed);
            }
            c.len.store(values.len() as u64, Ordering::Relaxed);
            c.stamp_ns.store(ns, Ordering::Relaxed);
            c.writes.store(w, Ordering::Relaxed);
        }
        // copy 1 is published by the next write's first switch (Release)
    }

    /// Copy the newest value into `out` (up to `out.len()` values) and
    /// return its length, stamp and write count. Never allocates, never
    /// waits for a preempted writer; retries only if the writer finished a
    /// half-write during the copy.
    pub fn read(&self, out: &mut [f64]) -> Snapshot {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            let c = &self.copies[(s1 & 1) as usize];
            for (o, slot) in out.iter_mut().zip(c.data.iter()) {
                *o = f64::from_bits(slot.load(Ordering::Relaxed));
            }
            let len = c.len.load(Ordering::Relaxed) as usize;
            let stamp = Duration::from_nanos(c.stamp_ns.load(Ordering::Relaxed));
            let seq = c.writes.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return Snapshot { len, stamp, seq };
            }
            std::hint::spin_loop();
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

    /// A writer stopped in the middle of a write (as when a SCHED_FIFO
    /// reader preempts it on the same core) does not block the reader: it
    /// reads the previous complete value at once.
    #[test]
    fn a_writer_stopped_mid_write_does_not_block_the_reader() {
        let epoch = Instant::now();
        let cell = LatestWins::new(2, epoch);
        cell.write(&[1.0, 1.0], epoch);
        // the first half of a write of [2, 2], by hand: readers switched to
        // copy 1, copy 0 half updated
        cell.seq
            .store(cell.seq.load(Ordering::Relaxed) + 1, Ordering::Release);
        cell.copies[0].data[0].store(2.0f64.to_bits(), Ordering::Relaxed);
        let cell = Arc::new(cell);
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = cell.clone();
        // a reader that spun on the stopped writer would never answer
        std::thread::spawn(move || {
            let mut out = [0.0; 2];
            let snap = reader.read(&mut out);
            let _ = tx.send((out, snap.seq));
        });
        let (out, seq) = rx
            .recv_timeout(Duration::from_secs(2))
            .expect("the reader spun on a writer stopped mid-write");
        assert_eq!(out, [1.0, 1.0]);
        assert_eq!(seq, 1);
    }
}
