//! Per-topic bounds on what a local Reader buffers while receiving samples.
//!
//! Without bounds, a single DATAFRAG submessage claiming a `data_size` of
//! 1 GiB makes the receiving Reader allocate (and zero-fill) 1 GiB, up to
//! 128 such buffers are kept per writer GUID, and any GUID
//! prefix is accepted. A few forged UDP datagrams can thus exhaust memory and
//! stall the participant's event loop, which also sends for all local
//! writers.
//!
//! [`ReceptionLimits`] are set per topic name on the
//! [`DomainParticipant`](crate::DomainParticipant) with
//! [`set_reception_limits`](crate::DomainParticipant::set_reception_limits)
//! and are picked up by Readers of that topic created afterwards. The
//! returned [`ReceptionStats`] count what was refused.

use std::{
  sync::atomic::{AtomicU64, Ordering},
  time::Duration as StdDuration,
};

/// Bounds applied by a Reader to incoming samples (DATA and DATAFRAG).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceptionLimits {
  /// Largest serialized sample (payload bytes, including the 4-byte
  /// encapsulation header) that is accepted. A DATA with a larger payload, or
  /// a DATAFRAG whose `data_size` is larger, is dropped before anything is
  /// allocated for it; from a matched writer the sequence number is then
  /// treated as irrelevant, so a reliable writer is not asked to repeat it.
  pub max_sample_size: usize,
  /// At most this many partially received samples are kept per remote
  /// writer; beyond it one is evicted (see `FragmentAssembler`).
  pub max_partial_samples_per_writer: usize,
  /// At most this many remote writers have partially received samples at
  /// once; a DATAFRAG of a further writer is dropped (and counted) until one
  /// completes or expires. With the two bounds above, a Reader buffers at
  /// most `max_fragmenting_writers * max_partial_samples_per_writer *
  /// max_sample_size` bytes of partial samples.
  pub max_fragmenting_writers: usize,
  /// A partially received sample that receives no fragment for this long is
  /// dropped.
  pub partial_sample_timeout: StdDuration,
}

impl ReceptionLimits {
  /// Defaults of user-defined topics, equal to RustDDS' behaviour before
  /// limits existed, except that unmatched writers never get a reassembly
  /// buffer (their samples were discarded after reassembly anyway).
  pub const DEFAULT: Self = Self {
    max_sample_size: u32::MAX as usize,
    max_partial_samples_per_writer: 128,
    max_fragmenting_writers: usize::MAX,
    partial_sample_timeout: StdDuration::from_secs(10),
  };

  /// Limits of the built-in (discovery) Readers unless set otherwise for
  /// their topic: discovery samples are a few kilobytes, so 256 KiB is far
  /// above any legitimate one; at most 4 partial samples per writer and 32
  /// writers with partial samples, i.e. at most 32 MiB of partial samples
  /// per Reader (the SPDP reader accepts fragments from unknown writers).
  pub const BUILT_IN: Self = Self {
    max_sample_size: 256 * 1024,
    max_partial_samples_per_writer: 4,
    max_fragmenting_writers: 32,
    partial_sample_timeout: StdDuration::from_secs(10),
  };

  /// Default limits with the given maximum sample size in bytes.
  pub const fn with_max_sample_size(max_sample_size: usize) -> Self {
    Self {
      max_sample_size,
      ..Self::DEFAULT
    }
  }
}

impl Default for ReceptionLimits {
  fn default() -> Self {
    Self::DEFAULT
  }
}

/// Counts of what Readers of one topic refused. Shared (`Arc`) between the
/// application and the participant's event loop; reads are relaxed atomics.
#[derive(Debug, Default)]
pub struct ReceptionStats {
  oversized_samples: AtomicU64,
  unmatched_fragments: AtomicU64,
  evicted_partial_samples: AtomicU64,
  expired_partial_samples: AtomicU64,
}

impl ReceptionStats {
  /// Samples dropped because they were larger than `max_sample_size`
  /// (counted once per sample: per DATA, per DATAFRAG sequence number of a
  /// matched writer, and per DATAFRAG submessage of an unknown one).
  pub fn oversized_samples(&self) -> u64 {
    self.oversized_samples.load(Ordering::Relaxed)
  }
  /// DATAFRAG submessages dropped because their (user-defined) writer is not
  /// matched with the Reader, or because `max_fragmenting_writers` other
  /// writers have partial samples.
  pub fn unmatched_fragments(&self) -> u64 {
    self.unmatched_fragments.load(Ordering::Relaxed)
  }
  /// Partial samples evicted by `max_partial_samples_per_writer`.
  pub fn evicted_partial_samples(&self) -> u64 {
    self.evicted_partial_samples.load(Ordering::Relaxed)
  }
  /// Partial samples dropped by `partial_sample_timeout`.
  pub fn expired_partial_samples(&self) -> u64 {
    self.expired_partial_samples.load(Ordering::Relaxed)
  }

  pub(crate) fn count_oversized(&self) {
    self.oversized_samples.fetch_add(1, Ordering::Relaxed);
  }
  pub(crate) fn count_unmatched(&self) {
    self.unmatched_fragments.fetch_add(1, Ordering::Relaxed);
  }
  pub(crate) fn count_evicted(&self, n: usize) {
    self
      .evicted_partial_samples
      .fetch_add(n as u64, Ordering::Relaxed);
  }
  pub(crate) fn count_expired(&self, n: usize) {
    self
      .expired_partial_samples
      .fetch_add(n as u64, Ordering::Relaxed);
  }
}
