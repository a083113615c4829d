//! Planning on an imported TD-MPC2 checkpoint, side by side in one run on
//! one thread: the controller's default Dream-MPC (the authors' planner,
//! N = 5, H = 3, K = 1) on the imported bundle, and the tch reference of
//! the same algorithm (`reference_planner::AuthorsPlanner`, autograd) on
//! the same PyTorch-layout weights. The checkpoints are TD-MPC2-shaped
//! random-weight models written by `trainer/python/tdmpc2_fixture.py`
//! (observation 24, action 6, 101-bin two-hot heads) and imported with
//! `dream_mpc_trainer::import`; nothing is downloaded, the scratch folder
//! is removed at the end.
//!
//! ```text
//! source scripts/env.sh && cargo bench -p dream-mpc-trainer --bench import_plan -- [--ticks N] [--sizes 1m,5m]
//! ```
//!
//! Prints p50/p99/max per tick for each implementation and the ratio of
//! the medians.

mod common;

use common::percentiles;
use dream_mpc::load::Bundle;
use dream_mpc::planner::bundle_model::BundleModel;
use dream_mpc::planner::{Planner, PlannerConfig, PlannerKind};
use dream_mpc_trainer::import::layout::Dims;
use dream_mpc_trainer::import::state_dict::python;
use dream_mpc_trainer::import::{import_weights, read_weights, ImportOptions};
use dream_mpc_trainer::reference_planner::{AuthorsBudget, AuthorsPlanner};
use std::process::Command;
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let ticks: usize = arg("--ticks").map_or(200, |s| s.parse().expect("--ticks N"));
    let sizes = arg("--sizes").unwrap_or_else(|| "1m,5m".into());
    tch::set_num_threads(1);
    let (obs, act) = (24usize, 6usize);
    println!("| size | implementation | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    for size in sizes.split(',') {
        let dims = Dims::named(size).expect("size");
        let dir =
            std::env::temp_dir().join(format!("dmpc-import-bench-{size}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/tdmpc2_fixture.py");
        let s = |v: usize| v.to_string();
        let st = Command::new(python(None))
            .arg(script)
            .arg(&dir)
            .args([
                "--obs",
                &s(obs),
                "--act",
                &s(act),
                "--latent",
                &s(dims.latent),
            ])
            .args([
                "--mlp",
                &s(dims.mlp),
                "--enc",
                &s(dims.enc),
                "--num-q",
                &s(dims.num_q),
            ])
            .args(["--cases", "1"])
            .status()
            .expect("fixture");
        assert!(st.success(), "fixture failed");
        let opts = ImportOptions::new(
            &dir.join("checkpoint.pt"),
            &dir.join("bundle"),
            "bench",
            obs,
            act,
            dims,
            500,
            2,
        );
        let weights = read_weights(&opts).expect("weights");
        let (_, tm) = import_weights(&opts, weights).expect("import");
        let bundle = Bundle::load(&opts.out).expect("load");
        let model = BundleModel::new(&bundle).expect("model");
        let m = &bundle.manifest;
        let pc = PlannerConfig::for_kind(PlannerKind::DreamMpc, &m.planner, m.discount);
        let mut ours = Planner::new(&model, pc).expect("planner");
        let budget = AuthorsBudget {
            gamma: m.discount as f64,
            ..Default::default()
        };
        let mut reference = AuthorsPlanner::new(budget, 0);
        tch::manual_seed(0);
        let z0s: Vec<Tensor> = (0..ticks + 10)
            .map(|_| {
                let o = Tensor::randn([1, obs as i64], (Kind::Float, Device::Cpu));
                tch::no_grad(|| tm.encode(&o))
            })
            .collect();
        let z0v: Vec<Vec<f32>> = z0s
            .iter()
            .map(|z| Vec::try_from(&z.view([-1])).expect("z0"))
            .collect();
        let (mut t_ours, mut t_ref) = (vec![], vec![]);
        for (i, (z, zv)) in z0s.iter().zip(&z0v).enumerate() {
            let t = Instant::now();
            ours.plan(&model, zv, Instant::now() + Duration::from_secs(10))
                .expect("plan");
            let a = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            let _ = reference.act(&tm, z);
            let b = t.elapsed().as_secs_f64() * 1e3;
            if i >= 10 {
                t_ours.push(a);
                t_ref.push(b);
            }
        }
        let (o50, o99, omax) = percentiles(t_ours);
        let (r50, r99, rmax) = percentiles(t_ref);
        println!("| {size} | controller dream_mpc | {o50:.3} | {o99:.3} | {omax:.3} |");
        println!("| {size} | tch autograd reference | {r50:.3} | {r99:.3} | {rmax:.3} |");
        println!("| {size} | ratio of medians | {:.1}x | | |", r50 / o50);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
