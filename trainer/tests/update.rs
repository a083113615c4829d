//! The fused update against the earlier per-head one: same
//! seed, same replay, same batches, so the same losses and weights within
//! float tolerance; checkpoints keep their per-variable names and load
//! across the two paths.

use dream_mpc::rng::Rng;
use dream_mpc_trainer::checkpoint::{self, State};
use dream_mpc_trainer::model::ModelConfig;
use dream_mpc_trainer::train::{Learner, TrainConfig, UpdatePath};
use std::collections::BTreeMap;
use std::sync::Mutex;
use tch::{Device, Tensor};

/// libtorch's generator is process-global: the tests take turns.
static TORCH_RNG: Mutex<()> = Mutex::new(());

fn cfg(dropout: f64) -> TrainConfig {
    TrainConfig {
        seed: 11,
        batch: 32,
        horizon: 3,
        model: ModelConfig {
            q_dropout: dropout,
            ..ModelConfig::tiny(3)
        },
        ..Default::default()
    }
}

/// An agent on `path` with four random episodes (the same for every call).
fn agent(c: &TrainConfig, path: UpdatePath) -> Learner {
    let mut a = Learner::new(c, 3, 2, 60, Device::Cpu);
    a.path = path;
    let len = a.replay.len;
    let mut rng = Rng::new(4);
    for _ in 0..4 {
        let o: Vec<f32> = (0..(len + 1) * 3).map(|_| rng.normal() as f32).collect();
        let act: Vec<f32> = (0..len * 2)
            .map(|_| rng.uniform_in(-1.0, 1.0) as f32)
            .collect();
        // Rewards up to 5: the two-hot targets spread over many bins.
        let r: Vec<f32> = (0..len).map(|_| 5.0 * rng.uniform() as f32).collect();
        a.replay.push_episode(&o, &act, &r);
    }
    a
}

fn close(x: f64, y: f64, rel: f64) -> bool {
    (x - y).abs() <= rel * x.abs().max(y.abs()).max(1e-3)
}

fn vars(a: &Learner) -> BTreeMap<String, Tensor> {
    a.vs.variables().into_iter().collect()
}

#[test]
fn fused_update_matches_the_per_head_update() {
    let _turn = TORCH_RNG.lock().unwrap_or_else(|p| p.into_inner());
    // Without dropout both paths draw the same noise in the same order.
    let c = cfg(0.0);
    let mut a = agent(&c, UpdatePath::PerHead);
    let mut b = agent(&c, UpdatePath::Fused);
    for k in 0..8 {
        let (la, lb) = (a.update(), b.update());
        for (what, x, y) in [
            ("consistency", la.consistency, lb.consistency),
            ("reward", la.reward, lb.reward),
            ("value", la.value, lb.value),
            ("policy", la.policy, lb.policy),
        ] {
            assert!(x.is_finite() && x != 0.0, "update {k}: {what} loss {x}");
            assert!(
                close(x, y, 1e-4),
                "update {k}: {what} loss per-head {x} vs fused {y}"
            );
        }
    }
    // The weights moved, and moved alike (the value heads and the target
    // through the value loss above).
    let (va, vb) = (vars(&a), vars(&b));
    let fresh = vars(&agent(&c, UpdatePath::Fused));
    let mut moved = 0;
    for (name, ta) in &va {
        let d = (ta - &vb[name]).abs().max().double_value(&[]);
        assert!(d < 1e-4, "{name}: per-head and fused differ by {d}");
        if (ta - &fresh[name]).abs().max().double_value(&[]) > 1e-6 {
            moved += 1;
        }
    }
    assert_eq!(moved, va.len(), "every variable is trained");
}

#[test]
fn fused_update_with_dropout_trains_and_the_heads_see_it() {
    let _turn = TORCH_RNG.lock().unwrap_or_else(|p| p.into_inner());
    let c = cfg(0.01);
    let mut a = agent(&c, UpdatePath::Fused);
    let first = a.update();
    let mut last = first;
    for _ in 0..30 {
        last = a.update();
        assert!(last.value.is_finite() && last.policy.is_finite());
    }
    assert!(
        last.reward < first.reward && last.value < first.value,
        "losses fall: {first:?} -> {last:?}"
    );
    // Export reads the per-head modules: they hold the trained weights.
    let z = Tensor::randn([5, 16], (tch::Kind::Float, Device::Cpu)).softmax(-1, tch::Kind::Float);
    let act = Tensor::randn([5, 2], (tch::Kind::Float, Device::Cpu)).tanh();
    let q = a.model.q_all(&z, &act, false);
    assert!(
        q.abs().max().double_value(&[]) > 0.0,
        "Q output layers left zero"
    );
}

#[test]
fn checkpoints_keep_their_names_and_load_across_paths() {
    let _turn = TORCH_RNG.lock().unwrap_or_else(|p| p.into_inner());
    let c = cfg(0.0);
    let dir = std::env::temp_dir().join(format!("dmpc-update-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut a = agent(&c, UpdatePath::Fused);
    for _ in 0..3 {
        a.update();
    }
    checkpoint::save(&a, &dir, &mut State::fresh(&c)).expect("save");
    // Adam moments under `{wm,pi}.{m,v}.<variable>` for every variable,
    // each saved on its own (not the whole flat buffer per entry).
    let adam: BTreeMap<String, Tensor> = Tensor::load_multi(dir.join("adam.ot"))
        .expect("adam.ot")
        .into_iter()
        .collect();
    let names = vars(&a);
    assert_eq!(adam.len(), 2 * names.len());
    for (name, t) in &names {
        let group = if name.starts_with("policy") {
            "pi"
        } else {
            "wm"
        };
        for which in ["m", "v"] {
            let key = format!("{group}.{which}.{name}");
            assert_eq!(adam[&key].size(), t.size(), "{key}");
        }
    }
    let params: i64 = names.values().map(|t| t.numel() as i64).sum();
    let bytes = std::fs::metadata(dir.join("adam.ot")).unwrap().len() as i64;
    assert!(
        bytes < 2 * 4 * params + 200_000,
        "adam.ot {bytes} bytes for {params} parameters"
    );

    // Resumed on the other path, the next updates match the original's.
    let mut b = agent(&c, UpdatePath::PerHead);
    checkpoint::restore(&mut b, &dir, &c).expect("restore");
    for k in 0..3 {
        let (la, lb) = (a.update(), b.update());
        assert!(
            close(la.value, lb.value, 1e-4) && close(la.policy, lb.policy, 1e-4),
            "update {k} after restore: {la:?} vs {lb:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
