//! The counting global allocator of the no-allocation tests.
//!
//! Install it once per test binary, then measure a closure:
//!
//! ```ignore
//! use dream_mpc_testkit::alloc::{allocations_in, CountingAlloc};
//! #[global_allocator]
//! static GLOBAL: CountingAlloc = CountingAlloc;
//!
//! let (_, n) = allocations_in(|| std::hint::black_box(vec![1u8; 16]));
//! assert_eq!(n, 1);
//! ```
//!
//! Counts are per thread (allocations, zeroed allocations and
//! reallocations made by the calling thread), so tests running in parallel
//! threads of the same binary do not see each other's allocations.
//! Deallocations are not counted: freeing is as much a real-time hazard as
//! allocating, but nothing frees without having allocated first.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: the allocator may run while this thread's locals are
    // being torn down; those allocations are not counted.
    let _ = COUNT.try_with(|c| c.set(c.get() + 1));
}

/// The system allocator, counting the calling thread's allocations.
pub struct CountingAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the counter is a
// thread-local `Cell` with a const initializer, which never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded contract of `GlobalAlloc::alloc`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded contract of `GlobalAlloc::alloc_zeroed`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract of `GlobalAlloc::dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: forwarded contract of `GlobalAlloc::realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations made so far by the calling thread (only meaningful where
/// [`CountingAlloc`] is the global allocator; otherwise always 0).
pub fn allocations() -> u64 {
    COUNT.with(|c| c.get())
}

/// Runs `f` and returns its result with the allocations it made on the
/// calling thread.
pub fn allocations_in<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = allocations();
    let r = f();
    (r, allocations() - before)
}
