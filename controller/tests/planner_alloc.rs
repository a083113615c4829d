//! Every planner's `plan` performs zero heap allocations after start-up,
//! checked with a counting global allocator (counts on this thread only, so
//! the test harness's own threads do not interfere).

use dream_mpc::bundle::manifest::PlannerDefaults;
use dream_mpc::planner::bundle_model::BundleModel;
use dream_mpc::planner::{DreamOptions, LatentModel, Planner, PlannerConfig, PlannerKind, Preset};
use dream_mpc_testkit::alloc::{allocations, CountingAlloc};
use dream_mpc_testkit::bundles::{random_bundle, TdmpcSpec};
use dream_mpc_testkit::lq::{Disagreement, LinearQuadratic};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations made by `ticks` calls of `plan` (the first call included),
/// with a generous deadline and with one that cuts the iterations short.
pub fn allocations_while_planning<M: LatentModel>(model: &M, config: PlannerConfig) -> u64 {
    let mut p = Planner::new(model, config).unwrap();
    let latent = model.dims().latent;
    let mut z = [0.0f32; 64];
    let before = allocations();
    for tick in 0..20 {
        for (i, x) in z[..latent].iter_mut().enumerate() {
            *x = ((tick * 7 + i) as f32 * 0.37).sin();
        }
        let deadline = if tick % 5 == 4 {
            Instant::now()
        } else {
            Instant::now() + Duration::from_secs(60)
        };
        let r = p.plan(model, &z[..latent], deadline).unwrap();
        assert!(r.action.as_slice().iter().all(|a| a.is_finite()));
    }
    allocations() - before
}

#[test]
fn no_planner_allocates_while_planning() {
    let mut m = LinearQuadratic::point_mass(4, 4, 0.3, 1.0, 0.1, 1.0);
    m.k = vec![-0.5; 16];
    m.disagreement = Some(Disagreement {
        center: vec![0.1; 4],
        width: 0.3,
        scale: 0.5,
    });
    let d = PlannerDefaults {
        candidates: 8,
        horizon: 3,
        iterations: 5,
        step_size: 0.05,
        beta: 0.5,
        options: dream_mpc::planner::DreamOptions::sketch(),
    };
    // Sanity: the counter does see allocations on this thread.
    let before = allocations();
    let v = std::hint::black_box(vec![1u8; 10]);
    assert!(allocations() > before && v.len() == 10);
    for kind in PlannerKind::ALL {
        let mut c = PlannerConfig::for_kind(kind, &d, 0.99);
        c.cem_samples = 64;
        c.cem_elites = 8;
        assert_eq!(allocations_while_planning(&m, c.clone()), 0, "{kind:?}");
        // Ablations switch ingredients; none may allocate either.
        c.reuse = !c.reuse;
        c.uncertainty = !c.uncertainty;
        assert_eq!(allocations_while_planning(&m, c), 0, "{kind:?} ablation");
    }
}

#[test]
fn no_planner_allocates_on_a_bundle_model() {
    // obs 5, action 2, latent 16, hidden 32, 2 Q heads, two-hot reward/Q.
    let (dir, bundle) = random_bundle("planner-alloc", &TdmpcSpec::new(5, 2, 16, 32, 2, 7));
    let model = BundleModel::new(&bundle).unwrap();
    let m = &bundle.manifest;
    for kind in PlannerKind::ALL {
        let mut c = PlannerConfig::for_kind(kind, &m.planner, m.discount);
        c.cem_samples = 32;
        c.cem_elites = 4;
        assert_eq!(
            allocations_while_planning(&model, c),
            0,
            "{kind:?} on a bundle"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Option sets covering every branch of the gradient planners: the two
/// presets, and the authors' with each option switched to the sketch's.
fn option_sets() -> Vec<DreamOptions> {
    let (a, s) = (DreamOptions::authors(), DreamOptions::sketch());
    let mut sets = vec![a, s];
    let flips: [fn(&mut DreamOptions, &DreamOptions); 9] = [
        |o, s| o.optimizer = s.optimizer,
        |o, s| o.reuse = s.reuse,
        |o, s| o.uncertainty = s.uncertainty,
        |o, s| o.uncertainty_at = s.uncertainty_at,
        |o, _| o.uncertainty_gradient = true,
        |o, s| o.value_heads = s.value_heads,
        |o, s| o.value_action = s.value_action,
        |o, s| o.choice = s.choice,
        |o, s| {
            o.clamp_each_step = s.clamp_each_step;
            o.policy_mean_row = s.policy_mean_row;
        },
    ];
    for f in flips {
        let mut o = a;
        f(&mut o, &s);
        sets.push(o);
    }
    sets
}

#[test]
fn every_option_plans_without_allocating() {
    let (dir, bundle) = random_bundle("options-alloc", &TdmpcSpec::new(5, 2, 16, 32, 3, 9));
    let model = BundleModel::new(&bundle).unwrap();
    let m = &bundle.manifest;
    let mut lq = LinearQuadratic::point_mass(4, 4, 0.3, 1.0, 0.1, 1.0);
    lq.k = vec![-0.5; 16];
    for (i, options) in option_sets().into_iter().enumerate() {
        for kind in [PlannerKind::DreamMpc, PlannerKind::GradMpc] {
            let mut d = PlannerDefaults::preset(Preset::Authors);
            d.iterations = 3;
            d.beta = 0.3;
            d.options = options;
            let c = PlannerConfig::for_kind(kind, &d, m.discount);
            assert_eq!(
                allocations_while_planning(&model, c.clone()),
                0,
                "{kind:?} options #{i} {options:?} on a bundle"
            );
            assert_eq!(
                allocations_while_planning(&lq, c),
                0,
                "{kind:?} options #{i} on the LQ model"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
