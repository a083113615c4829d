//! glibc malloc settings for a node that runs for days (issue 13, the soak's
//! resident-memory creep).
//!
//! The control path allocates nothing after start-up
//! (`tests/ros_tick_alloc.rs`), but the DDS threads do: RustDDS's event loop
//! and discovery, the publisher and subscriber threads allocate and free a
//! few thousand small blocks a second, most of them on one thread and freed
//! on another. With glibc's defaults each of those threads gets its own
//! malloc arena (up to 8 per core) and the dynamic mmap threshold rises to
//! 1 MiB after the start-up's large buffers (netlink interface lists, the
//! planner's compile) are freed. Measured on the soak (docs/RESULTS.md,
//! "Soak"): the live heap stayed flat while the resident size of the
//! threads' arenas grew by about 0.3-0.4 KiB/s, the arenas' free space
//! fragmented by blocks that other threads free late.
//!
//! [`bound_allocator`] sets, before any thread starts:
//! - `M_ARENA_MAX` = [`ARENA_MAX`]: every thread allocates from the same
//!   arena, so a block freed by another thread is reused by the next
//!   allocation of its size instead of stranding free space in an arena that
//!   thread rarely uses. The lock this shares costs nothing on the control
//!   path (no allocation there) and little on the DDS threads (100 Hz).
//! - `M_MMAP_THRESHOLD` = [`MMAP_THRESHOLD`] (fixed, which also turns off
//!   glibc's dynamic threshold): blocks of 128 KiB and more are mapped and
//!   unmapped on their own instead of being carved from the arena, so the
//!   start-up's large temporary buffers leave no holes behind.
//!
//! A user's own `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES` in the environment
//! wins: the setting it names is left alone.
//!
//! Cost: one `mallopt` call each at start-up; nothing on the control path.

/// Arenas glibc may create (1: all threads share the main arena).
pub const ARENA_MAX: i32 = 1;
/// Allocations of this many bytes or more are `mmap`ed on their own.
pub const MMAP_THRESHOLD: i32 = 128 * 1024;

/// What [`bound_allocator`] set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapSettings {
    /// `M_ARENA_MAX` set to [`ARENA_MAX`] (false: left to the environment,
    /// or not glibc).
    pub arena_max: bool,
    /// `M_MMAP_THRESHOLD` set to [`MMAP_THRESHOLD`].
    pub mmap_threshold: bool,
}

/// Apply the settings above (call before any thread starts). Start-up only.
pub fn bound_allocator() -> HeapSettings {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    let user_arenas =
        std::env::var_os("MALLOC_ARENA_MAX").is_some() || tunables.contains("malloc.arena_max");
    let user_mmap = std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
        || tunables.contains("malloc.mmap_threshold");
    let mut s = HeapSettings::default();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt takes two integers and only changes malloc's
        // parameters; it is called before the node's threads exist.
        if !user_arenas {
            s.arena_max = unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX) } == 1;
        }
        if !user_mmap {
            s.mmap_threshold =
                unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) } == 1;
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = (user_arenas, user_mmap);
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
        // a large block still works (mapped on its own) and is returned
        let v = vec![7u8; 2 * MMAP_THRESHOLD as usize];
        assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), 7 * v.len());
    }
}
