//! `Task::step` (and `reset`, and the built-in policies' `act`) allocate
//! nothing: a counting global allocator, armed on this thread only, sees
//! zero allocations over whole episodes of every native task.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use dream_mpc_sim::policy::{self, PolicyKind};
use dream_mpc_sim::registry::{self, NATIVE};

struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(|a| a.get()) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.with(|a| a.get()) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counted<R>(f: impl FnOnce() -> R) -> (R, u64) {
    COUNT.with(|c| c.set(0));
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    (r, COUNT.with(|c| c.get()))
}

#[test]
fn stepping_allocates_nothing() {
    // The counter works: a Vec allocation is seen.
    let (_, n) = counted(|| std::hint::black_box(vec![1u8; 16]));
    assert_eq!(n, 1);
    for name in NATIVE {
        for kind in PolicyKind::ALL {
            let mut task = registry::make(name).unwrap();
            let mut pol = policy::make(kind, name).unwrap();
            let mut obs = vec![0.0; task.spec().obs_size];
            let mut action = vec![0.0; task.spec().action_size];
            let (ret, n) = counted(|| {
                let mut ret = 0.0;
                for seed in 0..2 {
                    task.reset(seed, &mut obs).unwrap();
                    pol.reset(seed);
                    loop {
                        pol.act(&obs, &mut action);
                        let st = task.step(&action, &mut obs).unwrap();
                        ret += st.reward;
                        if st.done {
                            break;
                        }
                    }
                }
                ret
            });
            assert!(ret.is_finite());
            assert_eq!(n, 0, "{name} with {kind:?}: {n} allocations in 2 episodes");
        }
    }
}
