//! Shared by the trainer's test binaries (each uses a part).
#![allow(dead_code)]

use dream_mpc_trainer::model::ModelConfig;
use dream_mpc_trainer::tasks;
use dream_mpc_trainer::train::TrainConfig;
use std::path::PathBuf;

/// A run of `steps` agent steps (100 an episode) on the 1-D reach task with
/// the tiny model: 100 seed agent steps, batch 32, one evaluation episode
/// every 200 agent steps.
pub fn tiny_run(seed: u64, steps: u64) -> TrainConfig {
    TrainConfig {
        task: tasks::REACH_1D.into(),
        seed,
        steps,
        seed_steps: Some(100),
        batch: 32,
        eval_every: 200,
        eval_episodes: 1,
        model: ModelConfig::tiny(3),
        ..Default::default()
    }
}

/// An empty scratch folder `dmpc-<tag>-<name>-<pid>` in the temp dir.
pub fn tmpdir(tag: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dmpc-{tag}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}
