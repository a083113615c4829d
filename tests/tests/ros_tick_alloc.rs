//! The control tick allocates nothing after start-up: everything the control
//! thread does per period (read the latest observation, check it, act,
//! clamp and scale, hand the action to the publisher, record latency and
//! jitter, and the periodic diagnostics summary) runs under a counting
//! global allocator that must stay at zero.

use dream_mpc::ros::control::{self, summary, ActionSource, PlanStatus, TickStatus};
use dream_mpc::ros::slot::Latest;
use dream_mpc::ros::{Config, Controller, Params, TickKind};
use dream_mpc_testkit::alloc::{allocations_in, CountingAlloc};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn config() -> Config {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/plumbing.yaml"),
    )
    .unwrap();
    Config::from_params(Params::from_yaml(&text).unwrap()).unwrap()
}

/// One control period exactly as the node's control thread runs it.
fn period(
    ctl: &mut Controller,
    obs: &Latest,
    act: &Latest,
    sum_cell: &Latest,
    sum: &mut [f64],
    k: u64,
) -> TickKind {
    let now = Instant::now();
    ctl.jitter.push(1e-6);
    ctl.jitter_total.push(1e-6);
    let kind = ctl.tick(now, now + Duration::from_millis(5), obs);
    act.write(ctl.output(), Instant::now());
    ctl.latency.push(now.elapsed().as_secs_f64());
    ctl.latency_total.push(now.elapsed().as_secs_f64());
    if k.is_multiple_of(50) {
        ctl.summarize(100.0, sum);
        sum_cell.write(sum, Instant::now());
    }
    kind
}

/// A source that allocates, to prove the counter sees allocations.
struct Allocating;
impl ActionSource for Allocating {
    fn act(&mut self, _: &[f32], _: Instant, a: &mut [f32]) -> TickStatus {
        let v = vec![0.5f32; a.len()];
        a.copy_from_slice(&v);
        TickStatus {
            status: PlanStatus::Done,
            predicted_return: 0.0,
        }
    }
    fn name(&self) -> &'static str {
        "allocating"
    }
}

#[test]
fn control_tick_allocates_nothing() {
    let cfg = config();
    let epoch = Instant::now();
    let mut ctl = Controller::new(&cfg, control::make_source(&cfg).unwrap());
    let obs = Latest::new(ctl.obs_capacity(), epoch);
    let act = Latest::new(cfg.action_size, epoch);
    let sum_cell = Latest::new(summary::LEN, epoch);
    let mut sum = vec![0.0; summary::LEN];
    let inputs: [&[f64]; 5] = [
        &[0.1, 0.2],
        &[f64::NAN, 0.0],
        &[0.1, 0.2, 0.3],
        &[0.3],
        &[2.0, 0.0],
    ];

    let mut kinds = [0usize; 6];
    let ((), n) = allocations_in(|| {
        for k in 0..500u64 {
            obs.write(inputs[(k % 5) as usize], Instant::now());
            let kind = period(&mut ctl, &obs, &act, &sum_cell, &mut sum, k);
            kinds[kind as usize] += 1;
        }
    });
    assert_eq!(n, 0, "the tick allocated");
    // every path was exercised: planned (incl. clamped), non-finite, wrong size
    assert_eq!(kinds[TickKind::Planned as usize], 200);
    assert_eq!(kinds[TickKind::NonFinite as usize], 100);
    assert_eq!(kinds[TickKind::WrongSize as usize], 200);
    assert!(ctl.counts.clamped >= 100);

    // the counter is live: an allocating source is caught
    let mut bad = Controller::new(&cfg, Box::new(Allocating));
    obs.write(&[0.1, 0.2], Instant::now());
    let (_, n) = allocations_in(|| period(&mut bad, &obs, &act, &sum_cell, &mut sum, 1));
    assert!(n > 0);
}
