//! glibc malloc settings for a node that runs for days (without them the
//! soak benchmark saw resident memory creep through per-thread arenas).
//!
//! The control path allocates nothing after start-up
//! (`tests/ros_tick_alloc.rs`), but the DDS threads do: RustDDS's event loop
//! and discovery, the publisher and subscriber threads allocate and free a
//! few thousand small blocks a second, most of them on one thread and freed
//! on another. With glibc's defaults each of those threads gets its own
//! malloc arena (up to 8 per core). Measured on the soak (docs/RESULTS.md,
//! "Soak"): the live heap stayed flat while the resident size of the
//! threads' arenas grew by about 0.3-0.4 KiB/s, the arenas' free space
//! fragmented by blocks that other threads free late.
//!
//! [`bound_allocator`] sets `M_ARENA_MAX` = [`ARENA_MAX`] before any
//! thread starts: every thread allocates from the main arena, so a block
//! freed by another thread is reused by the next allocation of its size
//! instead of stranding free space in an arena that thread rarely uses. The
//! lock this shares costs nothing on the control path (no allocation there)
//! and little on the DDS threads (a few thousand small blocks a second).
//!
//! Measured alternatives (8-20 minute soaks, docs/RESULTS.md): a fixed
//! 128 KiB `M_MMAP_THRESHOLD` alone still crept (0.6 KiB/s); with one arena
//! it lowered the start by 2 MiB but the smaller heap kept creeping
//! (about 0.2 KiB/s over 7 minutes), while one arena with glibc's dynamic
//! threshold stayed flat. So only the arena count is set.
//!
//! A user's own `MALLOC_ARENA_MAX` (or `glibc.malloc.arena_max` in
//! `GLIBC_TUNABLES`) wins and is left alone.
//!
//! Cost: one `mallopt` call at start-up; nothing on the control path.

/// Arenas glibc may create (1: all threads share the main arena).
pub const ARENA_MAX: i32 = 1;

/// What [`bound_allocator`] set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapSettings {
    /// `M_ARENA_MAX` set to [`ARENA_MAX`] (false: left to the environment,
    /// or not glibc).
    pub arena_max: bool,
}

/// Apply the setting above (call before any thread starts). Start-up only.
pub fn bound_allocator() -> HeapSettings {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    let user_arenas =
        std::env::var_os("MALLOC_ARENA_MAX").is_some() || tunables.contains("malloc.arena_max");
    let mut s = HeapSettings::default();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt takes two integers and only changes malloc's
        // parameters; it is called before the node's threads exist.
        if !user_arenas {
            s.arena_max = unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX) } == 1;
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = user_arenas;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_apply_on_glibc_unless_the_environment_names_them() {
        let s = bound_allocator();
        let on_glibc = cfg!(all(target_os = "linux", target_env = "gnu"));
        let env_arenas = std::env::var_os("MALLOC_ARENA_MAX").is_some()
            || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("malloc.arena_max"));
        assert_eq!(s.arena_max, on_glibc && !env_arenas, "{s:?}");
        // threads still allocate (from the shared arena) after the setting
        let sums: Vec<usize> = (0..4)
            .map(|i| {
                std::thread::spawn(move || vec![i as u8; 1 << 16].iter().map(|&b| b as usize).sum())
            })
            .map(|h| h.join().unwrap())
            .collect();
        assert_eq!(sums, vec![0, 1 << 16, 2 << 16, 3 << 16]);
    }
}
