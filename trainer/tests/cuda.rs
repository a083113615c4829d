//! The learner on a CUDA device. Without a CUDA device
//! the device tests print why and return (set DREAM_MPC_REQUIRE_CUDA=1 to
//! make that a failure, as scripts/gpu-check.sh does on the GPU machine);
//! the device-choice test runs everywhere.

mod common;

use dream_mpc::rng::Rng;
use dream_mpc_trainer::tasks;
use dream_mpc_trainer::train::{train, DeviceChoice, Learner, RunOptions, TrainConfig, UpdatePath};
use dream_mpc_trainer::verify::tract_forward_check;
use std::path::PathBuf;
use std::sync::Mutex;
use tch::Device;

/// libtorch's generator is process-global: the tests take turns.
static TORCH_RNG: Mutex<()> = Mutex::new(());

/// The CUDA device, or `None` after printing why the test is skipped.
fn cuda() -> Option<Device> {
    if tch::Cuda::is_available() {
        return Some(Device::Cuda(0));
    }
    let why = "skipped: no CUDA device was found (tch::Cuda::is_available() is false)";
    if std::env::var("DREAM_MPC_REQUIRE_CUDA").as_deref() == Ok("1") {
        panic!("DREAM_MPC_REQUIRE_CUDA=1 but {why}");
    }
    eprintln!("{why}");
    None
}

fn tiny(steps: u64) -> TrainConfig {
    common::tiny_run(3, steps)
}

fn tmpdir(name: &str) -> PathBuf {
    common::tmpdir("cuda", name)
}

#[test]
fn device_choice_resolves_or_names_the_missing_gpu() {
    let found = tch::Cuda::is_available();
    let (d, note) = DeviceChoice::Cpu.resolve().unwrap();
    assert_eq!((d, note), (Device::Cpu, None));
    let auto = DeviceChoice::Auto.resolve().unwrap();
    let cuda = DeviceChoice::Cuda.resolve();
    if found {
        assert_eq!(auto, (Device::Cuda(0), None));
        assert_eq!(cuda.unwrap().0, Device::Cuda(0));
    } else {
        assert_eq!(auto.0, Device::Cpu);
        assert!(auto.1.unwrap().contains("training on the CPU"));
        let e = cuda.unwrap_err().to_string();
        assert!(e.contains("no CUDA device was found"), "{e}");
    }
    let e = "gpu".parse::<DeviceChoice>().unwrap_err().to_string();
    assert!(
        e.contains("'gpu'") && e.contains("cpu, cuda or auto"),
        "{e}"
    );
}

/// The same seed gives the same initial weights on both devices, and the
/// first update's noise-free losses (consistency and reward) agree; the
/// learner's tensors live on the GPU; updates stay finite.
#[test]
fn cuda_update_matches_cpu() {
    let Some(dev) = cuda() else { return };
    let _turn = TORCH_RNG.lock().unwrap_or_else(|p| p.into_inner());
    let cfg = tiny(500);
    let mut agents = [Device::Cpu, dev].map(|d| Learner::new(&cfg, 3, 1, 200, d));
    let mut rng = Rng::new(9);
    let len = agents[0].replay.len;
    for _ in 0..3 {
        let o: Vec<f32> = (0..(len + 1) * 3).map(|_| rng.normal() as f32).collect();
        let a: Vec<f32> = (0..len).map(|_| rng.uniform_in(-1.0, 1.0) as f32).collect();
        let r: Vec<f32> = (0..len).map(|_| rng.uniform() as f32).collect();
        for ag in agents.iter_mut() {
            ag.replay.push_episode(&o, &a, &r);
        }
    }
    for (name, t) in agents[1].vs.variables() {
        assert_eq!(t.device(), dev, "{name} not on the GPU");
    }
    let l_cpu = agents[0].update();
    let l_gpu = agents[1].update();
    for (what, x, y) in [
        ("consistency", l_cpu.consistency, l_gpu.consistency),
        ("reward", l_cpu.reward, l_gpu.reward),
    ] {
        assert!(
            (x - y).abs() <= 1e-4 * x.abs().max(1e-3),
            "{what} loss cpu {x} vs cuda {y}"
        );
    }
    for _ in 0..20 {
        let l = agents[1].update();
        assert!(l.consistency.is_finite() && l.value.is_finite() && l.policy.is_finite());
    }
}

/// On the GPU the fused update computes the per-head update's first
/// losses (consistency, reward, value: same batch, same target noise, no
/// dropout; the policy noise is drawn in another order on CUDA, so the
/// policy loss is only checked finite), and both keep training.
#[test]
fn cuda_fused_update_matches_per_head() {
    let Some(dev) = cuda() else { return };
    let _turn = TORCH_RNG.lock().unwrap_or_else(|p| p.into_inner());
    let mut cfg = tiny(500);
    cfg.model.q_dropout = 0.0;
    let mut agents = [UpdatePath::PerHead, UpdatePath::Fused].map(|p| {
        let mut a = Learner::new(&cfg, 3, 1, 200, dev);
        a.path = p;
        a
    });
    let mut rng = Rng::new(5);
    let len = agents[0].replay.len;
    for _ in 0..3 {
        let o: Vec<f32> = (0..(len + 1) * 3).map(|_| rng.normal() as f32).collect();
        let a: Vec<f32> = (0..len).map(|_| rng.uniform_in(-1.0, 1.0) as f32).collect();
        let r: Vec<f32> = (0..len).map(|_| 3.0 * rng.uniform() as f32).collect();
        for ag in agents.iter_mut() {
            ag.replay.push_episode(&o, &a, &r);
        }
    }
    let l = agents.each_mut().map(|a| a.update());
    for (what, x, y) in [
        ("consistency", l[0].consistency, l[1].consistency),
        ("reward", l[0].reward, l[1].reward),
        ("value", l[0].value, l[1].value),
    ] {
        assert!(
            (x - y).abs() <= 1e-4 * x.abs().max(1e-3),
            "{what} loss per-head {x} vs fused {y}"
        );
    }
    for _ in 0..10 {
        for a in agents.iter_mut() {
            let l = a.update();
            assert!(l.consistency.is_finite() && l.value.is_finite() && l.policy.is_finite());
        }
    }
}

/// A short run on the GPU exports a bundle whose references (computed on
/// the CPU) tract reproduces, and resumes from its checkpoint on the GPU.
#[test]
fn cuda_run_exports_a_checked_bundle_and_resumes() {
    let Some(dev) = cuda() else { return };
    let _turn = TORCH_RNG.lock().unwrap_or_else(|p| p.into_inner());
    let out = tmpdir("run");
    let cfg = tiny(300);
    let opts = |resume, stop_after| RunOptions {
        resume,
        stop_after,
        device: dev,
        ..RunOptions::new(&out)
    };
    let a = train(
        &cfg,
        tasks::make(&cfg.task).unwrap(),
        &opts(false, Some(200)),
    )
    .unwrap();
    assert_eq!(a.agent_steps, 200);
    let b = train(&cfg, tasks::make(&cfg.task).unwrap(), &opts(true, None)).unwrap();
    assert_eq!(b.agent_steps, 300);
    assert!(b.updates > a.updates);
    let report = tract_forward_check(&b.bundle).unwrap();
    assert_eq!(report.len(), 5);
    for r in &report {
        assert!(r.max_abs_err < 1e-4, "{r:?}");
    }
    std::fs::remove_dir_all(&out).unwrap();
}
