//! The controller's default `dream_mpc` is the Dream-MPC authors' planner:
//! the same ticks, on the same exported model and the same random draws,
//! through the controller (compiled kernels, hand-written VJPs) and through
//! the independent tch reference (`reference_planner`, autograd) give the
//! same actions over multi-tick episodes that include the reuse.

use dream_mpc::load::Bundle;
use dream_mpc::planner::bundle_model::BundleModel;
use dream_mpc::planner::{PlanStatus, Planner, PlannerConfig, PlannerKind};
use dream_mpc_trainer::export::{export_bundle, ExportMeta};
use dream_mpc_trainer::model::{to_vec, ModelConfig, WorldModel};
use dream_mpc_trainer::reference_planner::{AuthorsBudget, AuthorsPlanner};
use std::time::{Duration, Instant};
use tch::{nn, Device, Kind, Tensor};

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("dmpc-refplan-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs 2 episodes x 6 ticks through both planners (the reference's rho
/// set to `ref_rho`); returns the largest action difference and the number
/// of ticks.
fn episode_gap(iterations: usize, beta: f64, seed: u64, ref_rho: f64) -> (f32, usize) {
    tch::manual_seed(3);
    let (obs, act) = (7usize, 3usize);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        latent: 32,
        hidden: 64,
        n_q: 5,
        ..Default::default()
    };
    let m = WorldModel::new(&vs.root(), &cfg, obs, act);
    vs.freeze();
    let dir = tmpdir(&format!("k{iterations}"));
    let mut meta = ExportMeta::plain("reference-planner", obs, act);
    meta.discount = 0.95;
    export_bundle(&m, &meta, &dir, 0).expect("export");
    let bundle = Bundle::load(&dir).expect("load");
    let model = BundleModel::new(&bundle).expect("model");

    // The shipped default is the authors' planner; only K, beta, the seed
    // and the discount are set here.
    let mut pc = PlannerConfig::for_kind(
        PlannerKind::DreamMpc,
        &bundle.manifest.planner,
        bundle.manifest.discount,
    );
    assert_eq!((pc.candidates, pc.horizon, pc.iterations), (5, 3, 1));
    pc.iterations = iterations;
    pc.beta = beta as f32;
    pc.seed = seed;
    let mut ours = Planner::new(&model, pc.clone()).expect("planner");
    let budget = AuthorsBudget {
        iterations,
        beta,
        gamma: 0.95,
        rho: ref_rho,
        ..Default::default()
    };
    let mut reference = AuthorsPlanner::new(budget, seed);

    let mut worst = 0.0f32;
    let mut ticks = 0;
    for episode in 0..2 {
        ours.reset();
        reference.reset();
        for tick in 0..6 {
            let o = Tensor::randn([1, obs as i64], (Kind::Float, Device::Cpu)) * 2.0;
            let z0 = tch::no_grad(|| m.encode(&o));
            let want = to_vec(&reference.act(&m, &z0));
            let r = ours
                .plan(
                    &model,
                    &to_vec(&z0),
                    Instant::now() + Duration::from_secs(60),
                )
                .expect("plan");
            assert_eq!(r.status, PlanStatus::Finished);
            assert_eq!(r.iterations, iterations);
            let got = r.action.as_slice();
            for (g, w) in got.iter().zip(&want) {
                let d = (g - w).abs();
                if d >= 1e-4 {
                    eprintln!(
                        "episode {episode} tick {tick}: controller {got:?} vs reference {want:?}"
                    );
                }
                worst = worst.max(d);
            }
            ticks += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    (worst, ticks)
}

#[test]
fn authors_defaults_match_the_tch_reference_over_episodes() {
    let (worst, ticks) = episode_gap(1, 0.01, 17, 0.1);
    eprintln!("K = 1: {ticks} ticks, largest action gap {worst:e}");
    assert!(worst < 1e-4, "largest action gap {worst}");
}

#[test]
fn several_steps_and_a_strong_uncertainty_weight_match_too() {
    // K = 3 re-evaluates unclamped sequences between steps; beta = 0.5
    // makes the (gradient-free) uncertainty decide the choice.
    let (worst, ticks) = episode_gap(3, 0.5, 5, 0.1);
    eprintln!("K = 3, beta = 0.5: {ticks} ticks, largest action gap {worst:e}");
    assert!(worst < 1e-4, "largest action gap {worst}");
}

#[test]
fn the_comparison_sees_the_reuse() {
    // A reference without the blend (rho = 0) must disagree after the
    // first tick of an episode: the check is sensitive to the reuse.
    let (worst, _) = episode_gap(1, 0.01, 17, 0.0);
    assert!(worst > 1e-3, "largest action gap only {worst}");
}
