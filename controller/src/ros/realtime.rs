//! Real-time execution of the control thread: SCHED_FIFO priority, CPU
//! pinning, locked memory and a prefaulted stack (the recipe of
//! ros2_control's controller manager and realtime_tools).
//!
//! - [`lock_memory`]: `mlockall(MCL_CURRENT | MCL_FUTURE)`, process-wide,
//!   called by `Configured::activate` after every start-up allocation
//!   (bundle, workspace, DDS entities, handoff buffers). `MCL_CURRENT`
//!   faults in and locks every page mapped so far (so the workspace pages
//!   are touched once, before the first tick); `MCL_FUTURE` locks what is
//!   mapped later (thread stacks, DDS buffers) as it is mapped.
//! - [`apply_to_current_thread`]: called from inside the control thread
//!   before its first tick: `sched_setaffinity(0, ...)` and
//!   `sched_setscheduler(0, SCHED_FIFO, ...)` (pid 0 = the calling thread
//!   on Linux, so the DDS threads keep the normal scheduler), then the
//!   stack prefault. Each setting is read back from the kernel, so
//!   [`RtStatus`] reports what is in force, not what was asked.
//!
//! A refused setting (no CAP_SYS_NICE or RLIMIT_RTPRIO, no CAP_IPC_LOCK
//! or RLIMIT_MEMLOCK, a core that does not exist) yields a [`Refusal`]
//! naming the setting and the missing permission; the node warns once and
//! runs without it, or refuses to start with `realtime.required: true`.
//!
//! None of this is on the control path: it all runs once at activation.

use std::fmt;

/// Highest SCHED_FIFO priority on Linux.
pub const MAX_PRIORITY: u8 = 99;
/// Largest core index a `cpu_set_t` can name.
pub const MAX_CPU: usize = 1023;

/// The `realtime.*` parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtConfig {
    /// 0 = the normal scheduler; 1..=99 = SCHED_FIFO at this priority.
    pub priority: u8,
    /// Pin the control thread to this core.
    pub cpu: Option<usize>,
    /// `mlockall(MCL_CURRENT | MCL_FUTURE)` after start-up.
    pub lock_memory: bool,
    /// Touch this much of the control thread's stack before the first tick.
    pub prefault_stack_kib: usize,
    /// Refuse to start when any setting is refused.
    pub required: bool,
}

impl RtConfig {
    /// Stack size to give the control thread: the prefaulted part plus
    /// 1 MiB of headroom, at least Rust's default 2 MiB.
    pub fn stack_bytes(&self) -> usize {
        (2usize << 20).max((self.prefault_stack_kib + 1024) << 10)
    }
}

/// The settings in force on the control thread (read back from the
/// kernel). `Copy`, so it travels in the diagnostics context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtStatus {
    /// SCHED_FIFO priority in force; 0 = normal scheduler.
    pub priority: u8,
    /// The core the control thread is pinned to (its affinity mask holds
    /// this core only).
    pub cpu: Option<usize>,
    /// mlockall is in force (`VmLck` of the process is non-zero).
    pub memory_locked: bool,
    /// KiB of stack touched before the first tick.
    pub stack_prefaulted_kib: usize,
}

impl fmt::Display for RtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.priority > 0 {
            write!(f, "SCHED_FIFO priority {}", self.priority)?;
        } else {
            f.write_str("normal scheduler")?;
        }
        match self.cpu {
            Some(c) => write!(f, ", pinned to cpu {c}")?,
            None => f.write_str(", not pinned")?,
        }
        f.write_str(if self.memory_locked {
            ", memory locked"
        } else {
            ", memory not locked"
        })?;
        write!(f, ", stack prefaulted {} KiB", self.stack_prefaulted_kib)
    }
}

/// A setting the OS refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The parameter, e.g. `realtime.priority`.
    pub setting: &'static str,
    /// What the call said and what permission it needs.
    pub why: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} refused: {}", self.setting, self.why)
    }
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// `mlockall(MCL_CURRENT | MCL_FUTURE)`: locks (and faults in) every page
/// of the process now and every page mapped later. Call once, after the
/// start-up allocations. Cost: one fault per page not yet resident.
pub fn lock_memory() -> Result<(), Refusal> {
    // SAFETY: mlockall takes flags only.
    let r = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
    if r == 0 {
        return Ok(());
    }
    let e = errno();
    let need = match e.raw_os_error() {
        Some(libc::ENOMEM) => {
            "the process is larger than RLIMIT_MEMLOCK and lacks CAP_IPC_LOCK \
             (raise memlock: limits.conf 'memlock unlimited' or systemd LimitMEMLOCK=infinity)"
        }
        Some(libc::EPERM) => {
            "needs CAP_IPC_LOCK or a non-zero RLIMIT_MEMLOCK \
             (limits.conf 'memlock unlimited' or systemd LimitMEMLOCK=infinity)"
        }
        _ => "mlockall failed",
    };
    Err(Refusal {
        setting: "realtime.lock_memory",
        why: format!("mlockall: {e}; {need}"),
    })
}

/// Bytes of the process's memory locked (`VmLck` in /proc/self/status).
pub fn locked_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmLck:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib << 10)
}

/// Pin the calling thread to `cpu`, then read the mask back.
fn pin(cpu: usize) -> Result<(), Refusal> {
    let refuse = |why: String| Refusal {
        setting: "realtime.cpu",
        why,
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    if cpu > MAX_CPU {
        return Err(refuse(format!(
            "cpu {cpu} is beyond the largest index a cpu set can hold ({MAX_CPU})"
        )));
    }
    // SAFETY: cpu_set_t is plain data; CPU_SET is bounded by MAX_CPU above;
    // pid 0 names the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            let e = errno();
            let why = if e.raw_os_error() == Some(libc::EINVAL) {
                format!(
                    "sched_setaffinity: {e}; cpu {cpu} does not exist or is not in this \
                     process's cpuset ({cores} cores available to it)"
                )
            } else {
                format!("sched_setaffinity: {e}")
            };
            return Err(refuse(why));
        }
        let mut back: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut back) != 0
            || !libc::CPU_ISSET(cpu, &back)
            || libc::CPU_COUNT(&back) != 1
        {
            return Err(refuse(format!(
                "the affinity mask read back is not cpu {cpu} alone"
            )));
        }
    }
    Ok(())
}

/// SCHED_FIFO at `priority` for the calling thread, read back.
fn fifo(priority: u8) -> Result<(), Refusal> {
    let refuse = |why: String| Refusal {
        setting: "realtime.priority",
        why,
    };
    let p = libc::sched_param {
        sched_priority: priority as libc::c_int,
    };
    // SAFETY: pid 0 = the calling thread; p outlives the call.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) } != 0 {
        let e = errno();
        let why = if e.raw_os_error() == Some(libc::EPERM) {
            format!(
                "sched_setscheduler(SCHED_FIFO, {priority}): {e}; needs CAP_SYS_NICE or \
                 RLIMIT_RTPRIO >= {priority} (limits.conf 'rtprio {priority}' or systemd \
                 LimitRTPRIO={priority})"
            )
        } else {
            format!("sched_setscheduler(SCHED_FIFO, {priority}): {e}")
        };
        return Err(refuse(why));
    }
    let mut back = libc::sched_param { sched_priority: 0 };
    // SAFETY: as above.
    let policy = unsafe { libc::sched_getscheduler(0) };
    let got = unsafe { libc::sched_getparam(0, &mut back) };
    if policy != libc::SCHED_FIFO || got != 0 || back.sched_priority != p.sched_priority {
        return Err(refuse(format!(
            "policy {policy} priority {} read back, not SCHED_FIFO {priority}",
            back.sched_priority
        )));
    }
    Ok(())
}

/// Touch `kib` KiB of the calling thread's stack, 4 KiB per frame, so the
/// pages are resident (and, under mlockall, locked) before the first tick.
#[inline(never)]
fn touch_stack(kib: usize) -> u8 {
    if kib == 0 {
        return 0;
    }
    let mut page = [0u8; 4096];
    // volatile writes: the optimizer may not elide the page
    for i in (0..page.len()).step_by(64) {
        // SAFETY: i < page.len().
        unsafe { std::ptr::write_volatile(page.as_mut_ptr().add(i), kib as u8) };
    }
    let below = touch_stack(kib.saturating_sub(4));
    std::hint::black_box(&page)[kib % 4096].wrapping_add(below)
}

/// Apply the thread settings of `cfg` to the calling thread (the control
/// thread, before its first tick): pin, SCHED_FIFO, stack prefault.
/// Returns the settings in force (memory lock included, read from
/// /proc/self/status) and the refusals. Start-up only: it allocates.
pub fn apply_to_current_thread(cfg: &RtConfig) -> (RtStatus, Vec<Refusal>) {
    let mut st = RtStatus::default();
    let mut refused = Vec::new();
    if let Some(cpu) = cfg.cpu {
        match pin(cpu) {
            Ok(()) => st.cpu = Some(cpu),
            Err(r) => refused.push(r),
        }
    }
    if cfg.priority > 0 {
        match fifo(cfg.priority) {
            Ok(()) => st.priority = cfg.priority,
            Err(r) => refused.push(r),
        }
    }
    std::hint::black_box(touch_stack(cfg.prefault_stack_kib));
    st.stack_prefaulted_kib = cfg.prefault_stack_kib;
    st.memory_locked = locked_bytes() > 0;
    (st, refused)
}

/// Page faults of this process so far: (minor, major), from
/// /proc/self/stat fields 10 and 12.
pub fn page_faults() -> (u64, u64) {
    page_faults_of("self")
}

/// Page faults of process `pid` ("self" or a number): (minor, major).
pub fn page_faults_of(pid: &str) -> (u64, u64) {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (0, 0);
    };
    // fields after the command name (which may hold spaces) start at 3
    let Some(rest) = s.rfind(')').map(|i| &s[i + 1..]) else {
        return (0, 0);
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|x| x.parse().ok()).unwrap_or(0);
    // rest starts at field 3 (state): minflt is field 10, majflt 12
    (num(10 - 3), num(12 - 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_asked_nothing_in_force() {
        let (st, refused) = apply_to_current_thread(&RtConfig::default());
        assert!(refused.is_empty());
        assert_eq!(st.priority, 0);
        assert_eq!(st.cpu, None);
        assert_eq!(st.stack_prefaulted_kib, 0);
    }

    #[test]
    fn a_core_that_does_not_exist_is_refused_by_name() {
        let cfg = RtConfig {
            cpu: Some(MAX_CPU),
            ..Default::default()
        };
        let h = std::thread::spawn(move || apply_to_current_thread(&cfg));
        let (st, refused) = h.join().unwrap();
        assert_eq!(st.cpu, None);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].setting, "realtime.cpu");
        assert!(refused[0].why.contains("does not exist"), "{}", refused[0]);
    }

    #[test]
    fn pinning_to_core_0_is_in_force_and_the_stack_is_touched() {
        let cfg = RtConfig {
            cpu: Some(0),
            prefault_stack_kib: 256,
            ..Default::default()
        };
        let h = std::thread::Builder::new()
            .stack_size(cfg.stack_bytes())
            .spawn(move || {
                let before = page_faults().0;
                let r = apply_to_current_thread(&cfg);
                (r, page_faults().0 - before)
            })
            .unwrap();
        let ((st, refused), minor) = h.join().unwrap();
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(st.cpu, Some(0));
        assert_eq!(st.stack_prefaulted_kib, 256);
        // 256 KiB of fresh stack is 64 pages; each first touch faults
        assert!(
            minor >= 32,
            "only {minor} minor faults while touching 256 KiB"
        );
    }

    #[test]
    fn page_faults_parse_and_grow() {
        let (a, _) = page_faults();
        let v = vec![1u8; 8 << 20];
        std::hint::black_box(&v);
        let (b, _) = page_faults();
        assert!(b > a, "minor faults {a} -> {b} after touching 8 MiB");
    }
}
