//! The observation-to-action pipeline (`Agent`) on a real exported bundle:
//! bad observations are refused by name, actions stay in bounds and map to
//! the manifest's actuator range, runs are deterministic, and a tick
//! (normalize, encode, plan) allocates nothing after start-up.

use dream_mpc::agent::{planner_kind, Agent, AgentError};
use dream_mpc::load::Bundle;
use dream_mpc::planner::{PlanStatus, PlannerKind};
use dream_mpc_testkit::alloc::{allocations, CountingAlloc};
use dream_mpc_testkit::bundles::{random_bundle, TdmpcSpec};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// obs 5, action 2, latent 16, hidden 32, 3 Q heads.
fn spec() -> TdmpcSpec {
    TdmpcSpec::new(5, 2, 16, 32, 3, 11)
}

fn bundle(tag: &str) -> (PathBuf, Bundle) {
    random_bundle(&format!("agent-{tag}"), &spec())
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

#[test]
fn planner_names_parse_with_dashes_or_underscores() {
    assert_eq!(planner_kind("dream-mpc").unwrap(), PlannerKind::DreamMpc);
    assert_eq!(
        planner_kind("policy_grad_mpc").unwrap(),
        PlannerKind::PolicyGradMpc
    );
    let e = planner_kind("ilqr").unwrap_err().to_string();
    assert!(e.contains("ilqr") && e.contains("dream_mpc"), "{e}");
}

#[test]
fn bad_observations_are_refused_by_name() {
    let (dir, b) = bundle("bad");
    let mut agent = Agent::with_defaults(&b, PlannerKind::DreamMpc, 0).unwrap();
    match agent.act(&[0.0; 4], far()) {
        Err(AgentError::ObservationSize {
            expected: 5,
            got: 4,
        }) => {}
        other => panic!("wrong size accepted: {other:?}"),
    }
    match agent.act(&[0.0, 1.0, f32::NAN, 0.0, 0.0], far()) {
        Err(AgentError::NonFiniteObservation(2)) => {}
        other => panic!("NaN accepted: {other:?}"),
    }
    match agent.act(&[0.0, f32::INFINITY, 0.0, 0.0, 0.0], far()) {
        Err(AgentError::NonFiniteObservation(1)) => {}
        other => panic!("inf accepted: {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_planner_acts_in_bounds_and_deterministically() {
    let (dir, b) = bundle("bounds");
    let obs = [0.3, -0.2, 0.9, 0.0, -1.5];
    for kind in PlannerKind::ALL {
        let run = || {
            let mut a = Agent::with_defaults(&b, kind, 5).unwrap();
            let mut out = Vec::new();
            for t in 0..3 {
                let o: Vec<f32> = obs.iter().map(|x| x + 0.1 * t as f32).collect();
                let d = a.act(&o, far()).unwrap();
                assert_eq!(d.status, PlanStatus::Finished, "{kind:?}");
                assert!(d.forward_rows >= 2, "{kind:?} counted {d:?}");
                let act = a.normalized_action().to_vec();
                assert!(
                    act.iter().all(|x| x.is_finite() && x.abs() <= 1.0),
                    "{kind:?} {act:?}"
                );
                out.extend(act);
            }
            out
        };
        assert_eq!(run(), run(), "{kind:?} not deterministic");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tick_allocates_nothing_after_start_up() {
    let (dir, b) = bundle("alloc");
    for kind in [
        PlannerKind::DreamMpc,
        PlannerKind::Policy,
        PlannerKind::Mppi,
    ] {
        let mut agent = Agent::with_defaults(&b, kind, 1).unwrap();
        let mut obs = [0.0f32; 5];
        let before = allocations();
        for t in 0..10 {
            for (i, o) in obs.iter_mut().enumerate() {
                *o = ((t * 5 + i) as f32 * 0.7).sin();
            }
            let deadline = if t % 4 == 3 { Instant::now() } else { far() };
            agent.act(&obs, deadline).unwrap();
        }
        // Refused observations allocate nothing either.
        let _ = agent.act(&[f32::NAN; 5], far());
        assert_eq!(allocations() - before, 0, "{kind:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
