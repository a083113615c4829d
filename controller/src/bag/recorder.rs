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
//!
//! Rewards and episode boundaries (`record_reward_topic`,
//! `record_episode_topic`): the DDS reception thread notes each received
//! reward into a third bounded queue ([`Recorder::note_reward`]) and the
//! newest episode index into atomics ([`Recorder::note_episode`]). At each
//! recorded tick the control thread sums the rewards received since the
//! previous recorded tick and, when that tick was the one just before,
//! queues the sum as a late reward record of it (same step index and time);
//! a new episode index marks the tick being recorded as the episode's
//! first. Same costs: atomics and copies, no allocation, no wait.

use super::write::{BagError, BagOptions, BagSummary, BagWriter, Step};
use crossbeam::queue::ArrayQueue;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// One tick as recorded: step index, wall-clock time and the vectors; or
/// (`late_reward`) the reward of an earlier tick, written under its index
/// and time.
pub struct TickRecord {
    pub index: u64,
    pub time_ns: u64,
    pub observation: Vec<f64>,
    pub action: Vec<f64>,
    pub episode_start: Option<i64>,
    pub late_reward: Option<f64>,
}

/// Rewards the reception thread may hold for the control thread between
/// two recorded ticks (at 100 Hz rewards and 1 Hz ticks: 100); beyond it
/// the oldest are overwritten and counted as dropped records.
const REWARD_QUEUE: usize = 256;

/// The control -> writer hand-off (see the module docs).
pub struct Recorder {
    free: ArrayQueue<TickRecord>,
    filled: ArrayQueue<TickRecord>,
    dropped: AtomicU64,
    done: AtomicBool,
    obs_size: usize,
    action_size: usize,
    rewards: ArrayQueue<f64>,
    episode: AtomicI64,
    episodes_noted: AtomicU64,
    // control thread only (atomics for Sync): the previous recorded tick
    // (index + 1, 0 = none), its time, and the episode notes seen
    last_index: AtomicU64,
    last_time_ns: AtomicU64,
    episodes_seen: AtomicU64,
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
                episode_start: None,
                late_reward: None,
            });
        }
        Recorder {
            free,
            filled: ArrayQueue::new(capacity),
            dropped: AtomicU64::new(0),
            done: AtomicBool::new(false),
            obs_size,
            action_size,
            rewards: ArrayQueue::new(REWARD_QUEUE),
            episode: AtomicI64::new(0),
            episodes_noted: AtomicU64::new(0),
            last_index: AtomicU64::new(0),
            last_time_ns: AtomicU64::new(0),
            episodes_seen: AtomicU64::new(0),
        }
    }

    /// A reward received (reception thread). Never blocks or allocates.
    pub fn note_reward(&self, r: f64) {
        if self.rewards.force_push(r).is_some() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An episode index received (reception thread); a change of index
    /// starts an episode at the next recorded tick.
    pub fn note_episode(&self, index: i64) {
        if self.episode.swap(index, Ordering::AcqRel) != index
            || self.episodes_noted.load(Ordering::Acquire) == 0
        {
            self.episodes_noted.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn queue(&self, r: TickRecord) -> bool {
        // `filled` has as many slots as there are records: this cannot fail
        if let Err(r) = self.filled.push(r) {
            let _ = self.free.push(r);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Queue tick `index`'s record (called on the control thread). Returns
    /// false when it was dropped (no free slot, or a size that differs from
    /// the recorder's). Cost: O(obs + action) copies and a few atomic
    /// operations; never allocates, never blocks.
    pub fn push(&self, index: u64, time_ns: u64, observation: &[f64], action: &[f64]) -> bool {
        // the rewards received since the previous recorded tick are its own
        // when it was the tick just before and its record was queued (else
        // its transition has a gap, or its step is not in the bag)
        let (mut sum, mut n) = (0.0, 0u32);
        while let Some(r) = self.rewards.pop() {
            sum += r;
            n += 1;
        }
        // `last_index` is the last queued tick + 1 (0: none)
        if n > 0 && index > 0 && self.last_index.load(Ordering::Relaxed) == index {
            match self.free.pop() {
                Some(mut r) => {
                    r.index = index - 1;
                    r.time_ns = self.last_time_ns.load(Ordering::Relaxed);
                    r.late_reward = Some(sum);
                    r.episode_start = None;
                    self.queue(r);
                }
                None => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.last_index.store(0, Ordering::Relaxed);
        let noted = self.episodes_noted.load(Ordering::Acquire);
        let episode_start = (noted != self.episodes_seen.swap(noted, Ordering::Relaxed))
            .then(|| self.episode.load(Ordering::Acquire));
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
        r.episode_start = episode_start;
        r.late_reward = None;
        let queued = self.queue(r);
        if queued {
            self.last_index.store(index + 1, Ordering::Relaxed);
            self.last_time_ns.store(time_ns, Ordering::Relaxed);
        }
        queued
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
                            result = match r.late_reward {
                                Some(v) => bag.write_late_reward(r.index, r.time_ns, v),
                                None => bag.write_step(&Step {
                                    index: r.index,
                                    time_ns: r.time_ns,
                                    observation: &r.observation,
                                    action: Some(&r.action),
                                    reward: None,
                                    episode_start: r.episode_start,
                                }),
                            };
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
