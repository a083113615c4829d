//! `Task::step` (and `reset`, and the built-in policies' `act`) allocate
//! nothing: a counting global allocator, armed on this thread only, sees
//! zero allocations over whole episodes of every native task.

use dream_mpc_sim::policy::{self, PolicyKind};
use dream_mpc_sim::registry::{self, NATIVE};
use dream_mpc_testkit::alloc::{allocations_in, CountingAlloc};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn stepping_allocates_nothing() {
    // The counter works: a Vec allocation is seen.
    let (_, n) = allocations_in(|| std::hint::black_box(vec![1u8; 16]));
    assert_eq!(n, 1);
    for name in NATIVE {
        for kind in PolicyKind::ALL {
            let mut task = registry::make(name).unwrap();
            let mut pol = policy::make(kind, name).unwrap();
            let mut obs = vec![0.0; task.spec().obs_size];
            let mut action = vec![0.0; task.spec().action_size];
            let (ret, n) = allocations_in(|| {
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
