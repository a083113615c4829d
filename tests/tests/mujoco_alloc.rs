//! `Task::step` of every MuJoCo task allocates nothing (feature `mujoco`):
//! a counting global allocator sees no allocation across 200 steps after
//! the first reset. MuJoCo's own mj_step works in its preallocated arena.
#![cfg(feature = "mujoco")]

use dream_mpc_sim::mujoco::{MujocoTask, SuiteTask};
use dream_mpc_sim::Task;
use dream_mpc_testkit::alloc::{allocations, CountingAlloc};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn step_and_reset_allocate_nothing() {
    for t in SuiteTask::ALL {
        let mut task = MujocoTask::from_suite_task(t).unwrap();
        let spec = task.spec().clone();
        let mut obs = vec![0.0; spec.obs_size];
        let mut act = vec![0.0; spec.action_size];
        task.reset(0, &mut obs).unwrap();
        let before = allocations();
        for k in 0..200 {
            for (i, a) in act.iter_mut().enumerate() {
                *a = ((k * 7 + i * 3) as f64 * 0.37).sin();
            }
            task.step(&act, &mut obs).unwrap();
        }
        task.reset(1, &mut obs).unwrap();
        let after = allocations();
        assert_eq!(
            after - before,
            0,
            "{}: {} allocations in step/reset",
            t.name(),
            after - before
        );
    }
}
