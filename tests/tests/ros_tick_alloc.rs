//! The control update allocates nothing after start-up: everything the
//! control thread does per period (read the newest observation, check it,
//! act inside `catch_unwind`, clamp and scale, queue the action to the
//! publisher, record latency and jitter, and queue the periodic
//! diagnostics summary), and its deactivation, run under a counting global
//! allocator that must stay at zero.

use dream_mpc::agent::Observation;
use dream_mpc::bag::recorder::Recorder;
use dream_mpc::bag::write::{BagError, BagOptions, BagSummary};
use dream_mpc::control::ControlLoop;
use dream_mpc::control::{self, ActionSource, Controller, SourceFault, TickKind, TickStatus};
use dream_mpc::ros::node::Handoff;
use dream_mpc::ros::{Config, Params};
use dream_mpc_testkit::alloc::{allocations_in, CountingAlloc};
use dream_mpc_testkit::bundles::scratch_dir;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn config(extra: &[(&str, &str)]) -> Config {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/plumbing.yaml"),
    )
    .unwrap();
    let mut p = Params::from_yaml(&text).unwrap();
    for (k, v) in extra {
        p.apply_ros_args(&["-p".into(), format!("{k}:={v}")])
            .unwrap();
    }
    Config::from_params(p).unwrap()
}

/// A source that allocates, to prove the counter sees allocations.
struct Allocating;
impl ActionSource for Allocating {
    fn act(
        &mut self,
        _: Observation<'_>,
        _: Instant,
        a: &mut [f32],
    ) -> Result<TickStatus, SourceFault> {
        let v = vec![0.5f32; a.len()];
        a.copy_from_slice(&v);
        Ok(TickStatus::FIXED)
    }
    fn name(&self) -> &'static str {
        "allocating"
    }
}

/// The node's own update step ([`ControlLoop::update`]: tick, action
/// queued to the publisher, latency/jitter bookkeeping, diagnostics summary
/// queued every `diag_ticks`), with the queues drained as the publisher
/// would (outside the counted region: the publisher may allocate).
#[test]
fn control_update_allocates_nothing() {
    // diagnostics every 5 ticks at 100 Hz, so summaries are built and
    // queued many times, and the summary queue overflows (force_push)
    let cfg = config(&[
        ("diagnostics_period_s", "0.05"),
        ("on_planner_fault", "continue"),
    ]);
    let epoch = Instant::now();
    let ctl = Controller::new(&cfg.control, control::make_source(&cfg.control).unwrap());
    let h = Handoff::new(ctl.obs_capacity(), epoch);
    let mut lp = ControlLoop::new(&cfg.control, ctl, epoch);
    let inputs: [&[f64]; 5] = [
        &[0.1, 0.2],
        &[f64::NAN, 0.0],
        &[0.1, 0.2, 0.3],
        &[0.3],
        &[2.0, 0.0],
    ];

    let mut kinds = [0usize; 8];
    for k in 0..500u64 {
        let ((), n) = allocations_in(|| {
            h.observation
                .write(inputs[(k % 5) as usize], Instant::now());
            let kind = lp.update(Instant::now(), &h);
            kinds[kind as usize] += 1;
        });
        assert_eq!(n, 0, "the update allocated (period {k})");
        if k % 100 == 99 {
            // the publisher stalled for 100 periods: the action queue
            // overflowed and dropped (and counted) the oldest, no waiting
            while h.actions.pop().is_some() {}
        }
    }
    // every path was exercised: planned (incl. clamped), non-finite, wrong size
    assert_eq!(kinds[TickKind::Planned as usize], 200);
    assert_eq!(kinds[TickKind::NonFinite as usize], 100);
    assert_eq!(kinds[TickKind::WrongSize as usize], 200);
    assert!(lp.controller.counts.clamped >= 100);
    assert!(h.actions_dropped.load(Ordering::SeqCst) > 0);
    let s = h.summaries.pop().expect("summaries were queued");
    assert!(s.counts.ticks >= 495, "{s:?}");

    // deactivation queues the safe action last, without allocating
    let (report, n) = allocations_in(|| lp.deactivate(&h));
    assert_eq!(n, 0, "deactivate allocated");
    assert_eq!(report.counts.ticks, 500);
    let mut last = None;
    while let Some(a) = h.actions.pop() {
        last = Some(a);
    }
    assert_eq!(last.unwrap().as_slice(), cfg.control.safe_action.as_slice());

    // the counter is live: an allocating source is caught
    let mut bad = ControlLoop::new(
        &cfg.control,
        Controller::new(&cfg.control, Box::new(Allocating)),
        epoch,
    );
    h.observation.write(&[0.1, 0.2], Instant::now());
    let (_, n) = allocations_in(|| bad.update(Instant::now(), &h));
    assert!(n > 0);
}

/// A control loop on the plumbing config with diagnostics every 5 ticks,
/// recording through a recorder with a queue of 8 into a fresh scratch bag
/// folder (`name` in its name), its bag writer thread running.
struct Recording {
    dir: std::path::PathBuf,
    rec: Arc<Recorder>,
    writer: std::thread::JoinHandle<Result<BagSummary, BagError>>,
    h: Handoff,
    lp: ControlLoop,
}

fn recording(name: &str) -> Recording {
    let cfg = &config(&[("diagnostics_period_s", "0.05")]);
    let dir = scratch_dir(&format!("tick-alloc-{name}"));
    let epoch = Instant::now();
    let ctl = Controller::new(&cfg.control, control::make_source(&cfg.control).unwrap());
    let rec = Arc::new(Recorder::new(
        8,
        cfg.control.observation_size,
        cfg.control.action_size,
    ));
    let writer = rec
        .spawn_writer(
            dir.clone(),
            BagOptions::new(cfg.control.observation_size, cfg.control.action_size),
        )
        .unwrap();
    let h = Handoff::new(ctl.obs_capacity(), epoch).with_recorder(rec.clone());
    let lp = ControlLoop::new(&cfg.control, ctl, epoch);
    Recording {
        dir,
        rec,
        writer,
        h,
        lp,
    }
}

impl Recording {
    /// Deactivates the loop (which must allocate nothing), joins the bag
    /// writer and removes the bag: the writer's summary and the records
    /// the recorder dropped.
    fn finish(self) -> (BagSummary, u64) {
        let (_, n) = allocations_in(|| self.lp.deactivate(&self.h));
        assert_eq!(n, 0, "deactivate with recording allocated");
        let summary = self.writer.join().unwrap().unwrap();
        std::fs::remove_dir_all(&self.dir).unwrap();
        (summary, self.rec.dropped())
    }
}

/// With recording on (`record`): the same update, plus each
/// tick's record copied into the preallocated recorder and taken by the
/// bag writer thread running alongside (its allocations are its own
/// thread's), allocates nothing on the control thread; with a recorder
/// queue of 8 the writer may fall behind, and a record it missed is
/// counted, never waited for; deactivation's finish() allocates nothing;
/// the bag holds every planned tick that was not counted as dropped.
#[test]
fn control_update_with_recording_allocates_nothing() {
    let mut r = recording("bag");
    let inputs: [&[f64]; 3] = [&[0.1, 0.2], &[f64::NAN, 0.0], &[0.3, -0.2]];
    let mut planned = 0u64;
    for k in 0..3000u64 {
        let ((), n) = allocations_in(|| {
            r.h.observation
                .write(inputs[(k % 3) as usize], Instant::now());
            if r.lp.update(Instant::now(), &r.h) == TickKind::Planned {
                planned += 1;
            }
        });
        assert_eq!(n, 0, "the update with recording allocated (period {k})");
        while r.h.actions.pop().is_some() {}
    }
    let (summary, dropped) = r.finish();
    assert_eq!(planned, 2000);
    assert_eq!(
        summary.steps + dropped,
        planned,
        "every planned tick is written or counted"
    );
    assert!(summary.steps > 0);
    assert_eq!(summary.records_dropped, dropped);
}

/// Recording with rewards and episode starts (`record_reward_topic`,
/// `record_episode_topic`): the reception side's notes and the control
/// update's late reward records allocate nothing either; with a queue of
/// 8 records are dropped, and a reward is never queued for a step whose
/// record was dropped (the writer would refuse it and end the bag with an
/// error).
#[test]
fn control_update_recording_rewards_allocates_nothing() {
    let mut r = recording("rewards");
    for k in 0..3000u64 {
        let ((), n) = allocations_in(|| {
            r.rec.note_reward(0.5);
            r.rec.note_reward(0.25);
            if k % 1000 == 0 {
                r.rec.note_episode((k / 1000) as i64);
            }
            r.h.observation.write(&[0.1, 0.2], Instant::now());
            r.lp.update(Instant::now(), &r.h);
        });
        assert_eq!(n, 0, "the update recording rewards allocated (period {k})");
        while r.h.actions.pop().is_some() {}
    }
    let (summary, _) = r.finish();
    assert!(summary.steps > 0);
}

/// Run-time tunables from the parameter services reach
/// the control thread through the handoff's bounded queue and are applied
/// between ticks without allocating: the shipped pendulum planner, K and
/// beta changed while it runs, the next ticks plan with the new K.
#[test]
fn tunables_are_applied_between_ticks_without_allocating() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("config/controller.yaml")).unwrap();
    let mut p = Params::from_yaml(&text).unwrap();
    let bundle = root.join("models/pendulum-swingup");
    p.apply_ros_args(&["-p".into(), format!("bundle:={}", bundle.display())])
        .unwrap();
    let cfg = Config::from_params(p).unwrap();
    let epoch = Instant::now();
    let ctl = Controller::new(&cfg.control, control::make_source(&cfg.control).unwrap());
    let start = ctl.tunables;
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        start.iterations as u64,
        manifest["planner"]["iterations"].as_u64().unwrap(),
        "the bundle's K"
    );
    let h = Handoff::new(ctl.obs_capacity(), epoch);
    let mut lp = ControlLoop::new(&cfg.control, ctl, epoch);
    let obs = [1.0, 0.0, 0.0];
    // warm-up outside the counted region
    h.observation.write(&obs, Instant::now());
    lp.update(Instant::now(), &h);
    let mut seen = Vec::new();
    for (k, iterations) in [(0usize, 0usize), (1, 2), (2, 0)] {
        let t = control::Tunables {
            iterations,
            beta: 0.5 + k as f64,
            ..start
        };
        // the parameter services' side: an older value then the newest
        h.tunables.force_push(control::Tunables {
            iterations: 99,
            ..start
        });
        h.tunables.force_push(t);
        for _ in 0..3 {
            // a generous deadline so no tick is cut by it
            let ((), n) = allocations_in(|| {
                h.observation.write(&obs, Instant::now());
                lp.update(Instant::now(), &h);
            });
            assert_eq!(n, 0, "applying tunables allocated");
        }
        assert_eq!(lp.controller.tunables, t);
        let c = lp.controller.counts;
        seen.push((lp.controller.last_iterations, c.planned));
        let s = lp.controller.summarize(1.0);
        assert_eq!(s.tunables, t);
    }
    assert!(h.tunables.is_empty());
    // K = 0 runs no iteration; K = 2 at most two (the deadline may cut)
    assert_eq!(seen[0].0, 0, "{seen:?}");
    assert!(seen[1].0 <= 2, "{seen:?}");
    assert_eq!(seen[2].0, 0, "{seen:?}");
    assert!(seen[2].1 >= 9, "not planned: {seen:?}");
}

/// A model-free source that declares a training range (as a bundle's
/// `observation.range` would), so the plausibility check runs.
struct Ranged(dream_mpc::bundle::manifest::ObservationSpec);
impl ActionSource for Ranged {
    fn act(
        &mut self,
        _: Observation<'_>,
        _: Instant,
        a: &mut [f32],
    ) -> Result<TickStatus, SourceFault> {
        a.fill(0.5);
        Ok(TickStatus::FIXED)
    }
    fn name(&self) -> &'static str {
        "ranged"
    }
    fn observation_spec(&self) -> Option<&dream_mpc::bundle::manifest::ObservationSpec> {
        Some(&self.0)
    }
}

/// The plausibility check allocates nothing either, and
/// rejects an observation outside the range plus margin.
#[test]
fn plausibility_check_allocates_nothing() {
    use dream_mpc::bundle::manifest::{ObservationRange, ObservationSpec};
    let cfg = config(&[("plausibility.margin", "0.5")]);
    let spec = ObservationSpec::unnormalized(
        2,
        Some(ObservationRange {
            low: vec![-1.0, -1.0],
            high: vec![1.0, 1.0],
        }),
    );
    let epoch = Instant::now();
    let ctl = Controller::new(&cfg.control, Box::new(Ranged(spec)));
    assert!(ctl.plausibility_checked());
    let h = Handoff::new(ctl.obs_capacity(), epoch);
    let mut lp = ControlLoop::new(&cfg.control, ctl, epoch);
    // inside; inside the margin (|x| <= 1 + 0.5 * 2); far outside; just outside
    let inputs: [&[f64]; 4] = [&[0.1, 0.2], &[1.9, -1.9], &[1e30, -1e30], &[2.01, 0.0]];
    let mut kinds = [0usize; 8];
    for k in 0..400u64 {
        let ((), n) = allocations_in(|| {
            h.observation
                .write(inputs[(k % 4) as usize], Instant::now());
            kinds[lp.update(Instant::now(), &h) as usize] += 1;
        });
        assert_eq!(n, 0, "the update allocated (period {k})");
        while h.actions.pop().is_some() {}
    }
    assert_eq!(kinds[TickKind::Planned as usize], 200);
    assert_eq!(kinds[TickKind::Implausible as usize], 200);
    assert_eq!(lp.controller.counts.implausible, 200);
}
