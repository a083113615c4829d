//! What a run reports: one [`Metrics`] row per training episode and per
//! evaluation (written to `metrics.csv`), and the [`Losses`] of an update.

use crate::config::{io, TrainError};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// One row of `metrics.csv`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    /// Agent steps so far (TD-MPC2's unit; the learning curve's x axis).
    pub agent_step: u64,
    /// Control (environment) steps so far.
    pub env_step: u64,
    pub episode: u64,
    /// Return of the training episode that just ended (sum over its
    /// environment steps); `None` on evaluation rows.
    pub episode_return: Option<f64>,
    /// Mean return of the evaluation episodes (policy mean).
    pub eval_return: Option<f64>,
    /// Mean return of the evaluation episodes acted by the planner that
    /// runs on the robot (`None` where the run does not evaluate it).
    #[serde(default)]
    pub eval_planner_return: Option<f64>,
    /// Milliseconds spent exporting the current weights and loading them
    /// into the controller's agent before this training episode (planner
    /// collection only).
    #[serde(default)]
    pub refresh_ms: Option<f64>,
    pub consistency_loss: f64,
    pub reward_loss: f64,
    pub value_loss: f64,
    pub policy_loss: f64,
    /// Mean log-std of the policy's Gaussian (before the tanh) over the
    /// last update's batch: the spread Dream-MPC samples its candidates
    /// from, and with the planner collecting the only exploration.
    #[serde(default)]
    pub pi_log_std: f64,
    /// The running Q scale (TD-MPC2's `scale`: the 5-95 % range of Q on
    /// the policy's batch), which divides Q in the policy loss.
    #[serde(default)]
    pub q_scale: f64,
    pub updates: u64,
    /// Updates per second of wall clock since the previous row (acting,
    /// refreshes and evaluations included); `None` on evaluation rows.
    #[serde(default)]
    pub updates_per_s: Option<f64>,
    pub wall_s: f64,
}

const CSV_HEADER: &str = "agent_step,env_step,episode,episode_return,eval_return,eval_planner_return,refresh_ms,consistency_loss,reward_loss,value_loss,policy_loss,pi_log_std,q_scale,updates,updates_per_s,wall_s";

impl Metrics {
    pub fn csv(&self) -> String {
        let o = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.4},{:.4},{},{},{:.1}",
            self.agent_step,
            self.env_step,
            self.episode,
            o(self.episode_return),
            o(self.eval_return),
            o(self.eval_planner_return),
            o(self.refresh_ms),
            self.consistency_loss,
            self.reward_loss,
            self.value_loss,
            self.policy_loss,
            self.pi_log_std,
            self.q_scale,
            self.updates,
            o(self.updates_per_s),
            self.wall_s
        )
    }
}

/// Losses of one update (world model, then policy).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Losses {
    pub consistency: f64,
    pub reward: f64,
    pub value: f64,
    pub policy: f64,
    /// Mean log-std of the policy on the update's batch.
    pub pi_log_std: f64,
    /// The Q scale after the update.
    pub q_scale: f64,
}

/// Write `rows` to `path` as CSV with a header.
pub fn write_csv(path: &Path, rows: &[Metrics]) -> Result<(), TrainError> {
    let mut f = std::fs::File::create(path).map_err(io(path))?;
    writeln!(f, "{CSV_HEADER}").map_err(io(path))?;
    for r in rows {
        writeln!(f, "{}", r.csv()).map_err(io(path))?;
    }
    Ok(())
}
