//! What the control core is configured with: the action source, the
//! sizes and actuator mapping, the safe action, the watchdog, the
//! plausibility check, the fault policy, the planner's overrides and the
//! loop's rate. The node builds it from its parameters
//! (`crate::ros::config::Config::control`); nothing here knows ROS.

use crate::bundle::manifest::PlannerDefaults;
use crate::bundle::planner_options::{
    Choice, Optimizer, Preset, Reuse, Uncertainty, UncertaintyAt, ValueAction, ValueHeads,
};
use crate::planner::PlannerConfig;
use std::path::PathBuf;

/// The control core's configuration (checked by the node's parameter
/// table before it gets here; sizes agree with the vectors).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub action_source: SourceKind,
    /// Model bundle folder (required for `action_source: dream_mpc`).
    pub bundle: Option<PathBuf>,
    /// Size cap of each bundle module and references file, in MiB.
    pub bundle_max_file_mib: u64,
    /// Weight storage of the compiled bundle.
    pub bundle_weights: crate::kernels::Weights,
    /// Planner kind of the planner table (`dream-mpc`, `grad-mpc`, ...).
    pub planner: String,
    pub budget: Budget,
    /// `options.*`: the gradient planners' named options.
    pub options: OptionOverrides,
    pub control_rate_hz: f64,
    /// Share of the control period the planner may use before its deadline.
    pub plan_fraction: f64,
    pub observation_size: usize,
    pub action_size: usize,
    /// Actuator command = offset + scale * normalized action.
    pub action_scale: Vec<f64>,
    pub action_offset: Vec<f64>,
    /// Published (in actuator units) whenever the observation cannot be
    /// trusted, and on shutdown.
    pub safe_action: Vec<f64>,
    /// Linear feedback (row-major action_size x observation_size).
    pub linear_gain: Vec<f64>,
    pub linear_bias: Vec<f64>,
    pub watchdog_timeout_s: f64,
    /// Period of the diagnostics summary (sizes the statistics windows).
    pub diagnostics_period_s: f64,
    /// Fraction of each element's training range an observation may lie
    /// outside it.
    pub plausibility_margin: f64,
    /// Count implausible observations but plan on them.
    pub plausibility_warn_only: bool,
    pub on_planner_fault: FaultPolicy,
    /// Test-only fault injection: the planned tick (1-based) at which the
    /// control thread raises a panic inside planning; `None` = never.
    pub inject_planner_fault_at_tick: Option<u64>,
}

impl Settings {
    /// Control period.
    pub fn period(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(1.0 / self.control_rate_hz)
    }
}

/// What computes the action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The Dream-MPC planner on the model bundle.
    DreamMpc,
    /// `a = clamp(gain * obs + bias)`: a fixed linear feedback law, for
    /// plumbing tests and hardware bring-up (not a learned controller).
    Linear,
    /// Always the zero normalized action (bring-up only).
    Zero,
}

/// What the node does after a fault inside planning (a panic, or an error
/// the action source returns): the safe action goes out for that tick and
/// the fault is counted either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultPolicy {
    /// Publish the safe action as the last word and stop (exit code 3).
    Stop,
    /// Reset the planner and plan again from the next tick.
    Continue,
}

/// Planner budget overrides; `None` = the bundle manifest's planner
/// defaults (the values the model was shipped and tested with).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Budget {
    /// Candidates N.
    pub candidates: Option<usize>,
    /// Horizon H.
    pub horizon: Option<usize>,
    /// Iterations K per tick.
    pub iterations: Option<usize>,
    /// Step size of the action update.
    pub step_size: Option<f64>,
    /// Uncertainty weight beta.
    pub beta: Option<f64>,
}

impl Budget {
    /// Replace each setting of `pc` that this budget gives (the rest are
    /// kept). Start-up only.
    pub fn apply(&self, pc: &mut PlannerConfig) {
        if let Some(n) = self.candidates {
            pc.candidates = n;
        }
        if let Some(h) = self.horizon {
            pc.horizon = h;
        }
        if let Some(k) = self.iterations {
            pc.iterations = k;
        }
        if let Some(s) = self.step_size {
            pc.step_size = s as f32;
        }
        if let Some(b) = self.beta {
            pc.beta = b as f32;
        }
    }
}

/// Overrides of the gradient planners' named options (the table in
/// `crate::planner::options`); `None` = the bundle's value.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct OptionOverrides {
    /// A named budget + options that replaces the bundle's planner section
    /// before the `budget.*` and other `options.*` overrides.
    pub preset: Option<Preset>,
    pub optimizer: Option<Optimizer>,
    pub grad_clip_norm: Option<f64>,
    pub extra_iterations_large_action: Option<usize>,
    pub clamp_each_step: Option<bool>,
    pub policy_mean_row: Option<bool>,
    pub reuse: Option<Reuse>,
    pub rho: Option<f64>,
    pub uncertainty: Option<Uncertainty>,
    pub uncertainty_at: Option<UncertaintyAt>,
    pub uncertainty_gradient: Option<bool>,
    pub value_heads: Option<ValueHeads>,
    pub value_action: Option<ValueAction>,
    pub choice: Option<Choice>,
}

impl OptionOverrides {
    /// The bundle's planner section with these overrides applied: the
    /// preset first (it replaces budget and options), then each option.
    pub fn apply(&self, bundle: &PlannerDefaults) -> PlannerDefaults {
        let mut d = match self.preset {
            Some(p) => PlannerDefaults::preset(p),
            None => bundle.clone(),
        };
        let o = &mut d.options;
        macro_rules! set {
            ($($f:ident),*) => { $(if let Some(v) = self.$f { o.$f = v; })* };
        }
        set!(
            optimizer,
            extra_iterations_large_action,
            clamp_each_step,
            policy_mean_row,
            reuse
        );
        set!(
            uncertainty,
            uncertainty_at,
            uncertainty_gradient,
            value_heads,
            value_action,
            choice
        );
        if let Some(v) = self.grad_clip_norm {
            o.grad_clip_norm = v as f32;
        }
        if let Some(v) = self.rho {
            o.rho = v as f32;
        }
        d
    }

    /// True when any option or the preset is set.
    pub fn any(&self) -> bool {
        *self != OptionOverrides::default()
    }
}
