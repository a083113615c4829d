//! Shared by the trainer's side-by-side benchmarks (each bench binary uses
//! a part of it).
#![allow(dead_code)]

use dream_mpc::load::Bundle;
use dream_mpc_trainer::export::{export_bundle, ExportMeta};
use dream_mpc_trainer::model::{ModelConfig, WorldModel};
use std::path::PathBuf;
use tch::{nn, Device};

/// p50, p99 and max of the samples `v` (nearest rank).
pub fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (p(0.5), p(0.99), v[v.len() - 1])
}

/// A libtorch world model of `cfg` for observation `obs` and action `act`
/// (random weights from tch's seed, frozen) and the same model exported
/// with `meta` into the fresh folder
/// `dream-mpc-<name>` of the temp dir and loaded by the controller.
/// Returns the variables (they own the weights), the model, the bundle
/// and its folder, for the caller to remove.
pub fn exported_model(
    cfg: &ModelConfig,
    (obs, act): (usize, usize),
    meta: &ExportMeta,
    name: &str,
) -> (nn::VarStore, WorldModel, Bundle, PathBuf) {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let m = WorldModel::new(&vs.root(), cfg, obs, act);
    vs.freeze();
    let dir = std::env::temp_dir().join(format!("dream-mpc-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    export_bundle(&m, meta, &dir, 0).expect("export");
    let bundle = Bundle::load(&dir).expect("load");
    (vs, m, bundle, dir)
}
