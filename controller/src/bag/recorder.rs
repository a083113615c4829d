//! The node's recording hand-off (docs/BAGS.md, "Recording never stalls
//! the control tick"): the control thread copies each tick's record into a
//! preallocated slot and queues it; a writer thread drains the queue into a
//! [`BagWriter`].
//!
//! Two bounded `crossbeam` [`ArrayQueue`]s of [`TickRecord`]s, all
//! allocated at start-up: `free` (empty slots) and `filled` (records for
//! the writer). [`Recorder::push`] pops a free slot, copies the observation
//! and action into it and pushes it to `filled`: a few atomic operations
//! and two slice copies, no allocation, no lock, no wait. With no free
//! slot (the writer is behind) the record is dropped and counted. The
//! writer thread returns each slot to `free` after writing it.

use super::write::{BagError, BagOptions, BagSummary, BagWriter, Step};
use crossbeam::queue::ArrayQueue;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// One tick as recorded: step index, wall-clock time and the vectors.
pub struct TickRecord {
    pub index: u64,
    pub time_ns: u64,
    pub observation: Vec<f64>,
    pub action: Vec<f64>,
}

/// The control -> writer hand-off (see the module docs).
pub struct Recorder {
    free: ArrayQueue<TickRecord>,
    filled: ArrayQueue<TickRecord>,
    dropped: AtomicU64,
    done: AtomicBool,
    obs_size: usize,
    action_size: usize,
}

impl Recorder {
    /// Allocates `capacity` records of `obs_size` + `action_size` floats
    /// (start-up only).
    pub fn new(capacity: usize, obs_size: usize, action_size: usize) -> Self {
        let capacity = capacity.max(1);
        let free = ArrayQueue::new(capacity);
        for _ in 0..capacity {
            let _ = free.push(TickRecord {
                index: 0,
                time_ns: 0,
                observation: vec![0.0; obs_size],
                action: vec![0.0; action_size],
            });
        }
        Recorder {
            free,
            filled: ArrayQueue::new(capacity),
            dropped: AtomicU64::new(0),
            done: AtomicBool::new(false),
            obs_size,
            action_size,
        }
    }

    /// Queue tick `index`'s record (called on the control thread). Returns
    /// false when it was dropped (no free slot, or a size that differs from
    /// the recorder's). Cost: O(obs + action) copies and a few atomic
    /// operations; never allocates, never blocks.
    pub fn push(&self, index: u64, time_ns: u64, observation: &[f64], action: &[f64]) -> bool {
        if observation.len() != self.obs_size || action.len() != self.action_size {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let Some(mut r) = self.free.pop() else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        r.index = index;
        r.time_ns = time_ns;
        r.observation.copy_from_slice(observation);
        r.action.copy_from_slice(action);
        // `filled` has as many slots as there are records: this cannot fail
        if let Err(r) = self.filled.push(r) {
            let _ = self.free.push(r);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Records dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Tell the writer thread to write what is queued, close the bag and
    /// return.
    pub fn finish(&self) {
        self.done.store(true, Ordering::SeqCst);
    }

    /// Start the writer thread: creates the bag at `dir` (before returning,
    /// so a bad folder is a start-up error), then writes every queued
    /// record until [`Recorder::finish`], and closes the bag with the drop
    /// count. The thread's result is the closed bag's summary.
    pub fn spawn_writer(
        self: &Arc<Self>,
        dir: PathBuf,
        mut opts: BagOptions,
    ) -> Result<JoinHandle<Result<BagSummary, BagError>>, BagError> {
        opts.obs_size = self.obs_size;
        opts.action_size = self.action_size;
        let mut bag = BagWriter::create(&dir, opts)?;
        let me = Arc::clone(self);
        thread::Builder::new()
            .name("bag-writer".into())
            .spawn(move || {
                let mut result = Ok(());
                loop {
                    // read `done` before draining, so nothing queued before it is lost
                    let done = me.done.load(Ordering::SeqCst);
                    let mut any = false;
                    while let Some(r) = me.filled.pop() {
                        any = true;
                        if result.is_ok() {
                            result = bag.write_step(&Step {
                                index: r.index,
                                time_ns: r.time_ns,
                                observation: &r.observation,
                                action: Some(&r.action),
                                reward: None,
                                episode_start: None,
                            });
                        }
                        let _ = me.free.push(r);
                    }
                    if done {
                        break;
                    }
                    if !any {
                        thread::sleep(Duration::from_millis(5));
                    }
                }
                bag.set_records_dropped(me.dropped());
                let closed = bag.close();
                result.and(closed)
            })
            .map_err(|error| BagError::Io { path: dir, error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_and_the_writer_keeps_the_rest() {
        let dir = std::env::temp_dir().join(format!("dream-mpc-recorder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rec = Arc::new(Recorder::new(4, 2, 1));
        // before the writer runs: 4 slots, the 5th and 6th are dropped
        for k in 0..6 {
            let kept = rec.push(k, 100 + k, &[k as f64, 1.0], &[0.5]);
            assert_eq!(kept, k < 4, "record {k}");
        }
        assert!(!rec.push(6, 106, &[1.0], &[0.5]), "wrong size is dropped");
        assert_eq!(rec.dropped(), 3);
        let h = rec
            .spawn_writer(dir.clone(), BagOptions::new(2, 1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        for k in 7..10 {
            assert!(rec.push(k, 100 + k, &[k as f64, 1.0], &[0.5]));
        }
        rec.finish();
        let s = h.join().unwrap().unwrap();
        assert_eq!(s.steps, 7);
        assert_eq!(s.records_dropped, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
