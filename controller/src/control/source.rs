//! The action sources: what computes the action from a checked
//! observation. The Dream-MPC planner on a model bundle
//! ([`PlannerSource`], through [`crate::agent::Agent`]), or a fixed law for
//! plumbing tests and bring-up ([`LinearFeedback`], [`ZeroAction`]). A
//! source's `act` runs on the control thread: no allocation, no blocking.

use super::settings::{Budget, OptionOverrides, Settings, SourceKind};
use crate::agent::{planner_kind, Agent, AgentError, Observation};
use crate::bundle::manifest::ObservationSpec;
use crate::load::Bundle;
pub use crate::planner::PlanStatus;
use crate::planner::PlannerConfig;
use std::sync::Arc;
use std::time::Instant;

/// What an action source reports besides the action.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TickStatus {
    /// The planner's status (`Finished` for the fixed laws).
    pub status: PlanStatus,
    /// Predicted return of the chosen plan (NaN when the source has none).
    pub predicted_return: f32,
    /// Planner iterations completed this tick (0 for the fixed laws).
    pub iterations: usize,
}

impl TickStatus {
    /// A fixed law's status: it always finishes, predicts nothing.
    pub const FIXED: TickStatus = TickStatus {
        status: PlanStatus::Finished,
        predicted_return: f32::NAN,
        iterations: 0,
    };
}

/// The run-time tunables (the `[tunable]` rows of the parameter table),
/// handed from the parameter services to the control thread by value
/// through a bounded, preallocated queue and applied between ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tunables {
    /// K: planner iterations per tick (`budget.iterations`).
    pub iterations: usize,
    /// `budget.step_size`.
    pub step_size: f64,
    /// `budget.beta`.
    pub beta: f64,
    /// `plan_fraction`: share of the period before the planner's deadline.
    pub plan_fraction: f64,
}

/// An error inside planning (not a bad observation: those never reach the
/// source). Handled like a panic: safe action, counted, stop or continue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceFault(pub &'static str);

/// What computes the action: the Dream-MPC planner on the robot, or a fixed
/// law for plumbing tests. `act` runs on the control thread: it must not
/// allocate or block, and should return by `deadline`.
pub trait ActionSource: Send {
    /// `obs` has the configured observation size, every element finite
    /// (checked once, by the tick); write a normalized action (nominally
    /// in [-1, 1]) of the configured action size into `action`.
    fn act(
        &mut self,
        obs: Observation<'_>,
        deadline: Instant,
        action: &mut [f32],
    ) -> Result<TickStatus, SourceFault>;
    /// Short name for diagnostics.
    fn name(&self) -> &'static str;
    /// Forget any state carried between ticks (after a fault, with
    /// `on_planner_fault: continue`).
    fn reset(&mut self) {}
    /// The planner's tunables in effect (K, step size, beta in `t`; the
    /// caller fills `plan_fraction`); `None` for the fixed laws, which
    /// have none.
    fn tunables(&self) -> Option<Tunables> {
        None
    }
    /// Apply new planner tunables between ticks (already validated
    /// against the parameter table); false if the source refused them
    /// (nothing changed). Runs on the control thread: O(1), no allocation.
    fn tune(&mut self, _t: &Tunables) -> bool {
        false
    }
    /// The observation spec of the model behind the source (its training
    /// range drives the plausibility check); `None` for model-free sources.
    fn observation_spec(&self) -> Option<&ObservationSpec> {
        None
    }
}

/// `a = gain * obs + bias` (row-major gain, action_size x obs_size): a fixed
/// linear feedback law. Not a learned controller; it exists so the ROS 2
/// plumbing (rates, watchdog, shutdown, sim loop) can be tested and brought
/// up on hardware without a model. Cost: action_size * obs_size mult-adds.
pub struct LinearFeedback {
    gain: Vec<f32>,
    bias: Vec<f32>,
}

impl LinearFeedback {
    pub fn new(gain: &[f64], bias: &[f64]) -> Self {
        LinearFeedback {
            gain: gain.iter().map(|&g| g as f32).collect(),
            bias: bias.iter().map(|&b| b as f32).collect(),
        }
    }
}

impl ActionSource for LinearFeedback {
    fn act(
        &mut self,
        obs: Observation<'_>,
        _deadline: Instant,
        action: &mut [f32],
    ) -> Result<TickStatus, SourceFault> {
        let obs = obs.as_slice();
        let n = obs.len();
        for (i, a) in action.iter_mut().enumerate() {
            let row = &self.gain[i * n..(i + 1) * n];
            *a = self.bias[i] + row.iter().zip(obs).map(|(g, o)| g * o).sum::<f32>();
        }
        Ok(TickStatus::FIXED)
    }
    fn name(&self) -> &'static str {
        "linear"
    }
}

/// Always the zero normalized action (bring-up only).
pub struct ZeroAction;

impl ActionSource for ZeroAction {
    fn act(
        &mut self,
        _: Observation<'_>,
        _: Instant,
        action: &mut [f32],
    ) -> Result<TickStatus, SourceFault> {
        action.fill(0.0);
        Ok(TickStatus::FIXED)
    }
    fn name(&self) -> &'static str {
        "zero"
    }
}

message_error!(
    /// Why an action source cannot be built.
    #[derive(Debug)]
    SourceError
);

/// The planner settings in effect: the bundle's defaults with the node's
/// `options.*` (preset first) and `budget.*` overrides applied (printed by
/// `dream-mpc run` at start).
pub fn effective_planner(
    kind: crate::planner::PlannerKind,
    bundle: &Bundle,
    budget: &Budget,
    options: &OptionOverrides,
) -> PlannerConfig {
    let m = &bundle.manifest;
    let mut pc = PlannerConfig::for_kind(kind, &options.apply(&m.planner), m.discount);
    budget.apply(&mut pc);
    pc
}

/// One line naming each planner setting and where it came from.
pub fn describe_planner(pc: &PlannerConfig, budget: &Budget, options: &OptionOverrides) -> String {
    let base = match options.preset {
        Some(p) => format!("preset {p}"),
        None => "bundle".to_string(),
    };
    let from = |set: bool| if set { "parameter" } else { base.as_str() };
    // Each option as the files spell it (f32s printed shortest, through
    // the JSON text), marked `parameter` where an `options.*` key set it.
    let value = |text: Result<String, serde_json::Error>| {
        text.ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .unwrap_or_default()
    };
    let shown = value(serde_json::to_string(&pc.options));
    let given = value(serde_json::to_string(options));
    let opts: Vec<String> = shown
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let set = given.get(k).is_some_and(|g| !g.is_null());
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            format!("{k} {v} ({})", from(set))
        })
        .collect();
    format!(
        "planner {}: candidates {} ({}), horizon {} ({}), iterations {} ({}), step_size {} ({}), beta {} ({}), discount {} (bundle); options: {}",
        pc.kind.name(),
        pc.candidates,
        from(budget.candidates.is_some()),
        pc.horizon,
        from(budget.horizon.is_some()),
        pc.iterations,
        from(budget.iterations.is_some()),
        pc.step_size,
        from(budget.step_size.is_some()),
        pc.beta,
        from(budget.beta.is_some()),
        pc.discount,
        opts.join(", ")
    )
}

/// The Dream-MPC planner (or any baseline of the planner table) on a
/// model bundle, through [`crate::agent::Agent`]. The source owns the
/// bundle through an `Arc`; the agent shares its compiled modules.
pub struct PlannerSource {
    agent: Agent,
    bundle: Arc<Bundle>,
    settings: PlannerConfig,
    name: &'static str,
}

impl PlannerSource {
    /// Loads and checks the bundle, checks it against the node's sizes and
    /// action mapping, and builds the planner: the bundle's planner
    /// defaults, overridden by the `budget.*` parameters that are set.
    pub fn new(cfg: &Settings) -> Result<Self, SourceError> {
        let dir = cfg
            .bundle
            .as_deref()
            .ok_or_else(|| SourceError("action_source 'dream_mpc' needs `bundle`".into()))?;
        let err = |e: &dyn std::fmt::Display| SourceError(format!("bundle {}: {e}", dir.display()));
        let limits = crate::bundle::Limits::with_file_mib(cfg.bundle_max_file_mib);
        let (bundle, verified) =
            crate::agent::load_verified(dir, limits, cfg.bundle_weights).map_err(SourceError)?;
        let bundle = Arc::new(bundle);
        eprintln!("dream-mpc run: {verified}");
        let m = &bundle.manifest;
        if m.observation.range.is_some() {
            eprintln!(
                "dream-mpc run: plausibility check on: an observation element outside the bundle's training range by more than {} of that range is {}",
                cfg.plausibility_margin,
                if cfg.plausibility_warn_only { "counted and planned on (plausibility.action: warn)" } else { "rejected with the safe action and counted" }
            );
        } else {
            eprintln!(
                "dream-mpc run: bundle {} records no observation range (older or imported bundle): plausibility check off",
                dir.display()
            );
        }
        if m.observation.size != cfg.observation_size || m.action.size != cfg.action_size {
            return Err(SourceError(format!(
                "bundle {} is for observation {} / action {}, the parameters say observation.size {} / action.size {}",
                dir.display(),
                m.observation.size,
                m.action.size,
                cfg.observation_size,
                cfg.action_size
            )));
        }
        // The node maps normalized actions with offset + scale * a; the
        // bundle was trained on low + (a + 1) / 2 * (high - low). They must
        // be the same map, or the robot gets actions the model never meant.
        for i in 0..m.action.size {
            let (lo, hi) = (m.action.low[i] as f64, m.action.high[i] as f64);
            let (scale, offset) = (cfg.action_scale[i], cfg.action_offset[i]);
            let tol = 1e-6 * (1.0 + lo.abs().max(hi.abs()));
            if ((offset - scale) - lo).abs() > tol || ((offset + scale) - hi).abs() > tol {
                return Err(SourceError(format!(
                    "action.scale[{i}] = {scale} and action.offset[{i}] = {offset} map [-1, 1] to [{}, {}], \
                     but bundle {} was trained on [{lo}, {hi}] (set scale {} offset {})",
                    offset - scale,
                    offset + scale,
                    dir.display(),
                    (hi - lo) / 2.0,
                    (hi + lo) / 2.0
                )));
            }
        }
        let kind = planner_kind(&cfg.planner).map_err(|e| SourceError(format!("planner: {e}")))?;
        let settings = effective_planner(kind, &bundle, &cfg.budget, &cfg.options);
        // The agent shares the bundle's compiled modules (`Arc<Program>`);
        // the source keeps the bundle itself for its manifest.
        let agent = Agent::new(&bundle, settings.clone()).map_err(|e| err(&e))?;
        Ok(PlannerSource {
            agent,
            bundle,
            settings,
            name: kind.name(),
        })
    }

    /// The planner settings in effect (bundle defaults + overrides).
    pub fn settings(&self) -> &PlannerConfig {
        &self.settings
    }

    /// The loaded bundle (shared ownership).
    pub fn bundle(&self) -> &Arc<Bundle> {
        &self.bundle
    }
}

impl ActionSource for PlannerSource {
    fn act(
        &mut self,
        obs: Observation<'_>,
        deadline: Instant,
        action: &mut [f32],
    ) -> Result<TickStatus, SourceFault> {
        match self.agent.act_on(obs, deadline) {
            Ok(d) => {
                action.copy_from_slice(self.agent.normalized_action());
                Ok(TickStatus {
                    status: d.status,
                    predicted_return: d.predicted_return.unwrap_or(f32::NAN),
                    iterations: d.iterations,
                })
            }
            Err(AgentError::Plan(_)) => Err(SourceFault("the planner returned an error")),
            Err(_) => Err(SourceFault("the agent refused the observation")),
        }
    }
    fn name(&self) -> &'static str {
        self.name
    }
    fn observation_spec(&self) -> Option<&ObservationSpec> {
        Some(&self.bundle.manifest.observation)
    }

    fn reset(&mut self) {
        self.agent.reset();
    }
    fn tunables(&self) -> Option<Tunables> {
        let c = self.agent.planner().config();
        Some(Tunables {
            iterations: c.iterations,
            step_size: c.step_size as f64,
            beta: c.beta as f64,
            plan_fraction: f64::NAN,
        })
    }
    fn tune(&mut self, t: &Tunables) -> bool {
        self.agent
            .planner_mut()
            .set_tunables(t.iterations, t.step_size as f32, t.beta as f32)
            .is_ok()
    }
}

/// Build the configured action source (allocates; start-up only).
pub fn make_source(cfg: &Settings) -> Result<Box<dyn ActionSource>, SourceError> {
    match cfg.action_source {
        SourceKind::Linear => Ok(Box::new(LinearFeedback::new(
            &cfg.linear_gain,
            &cfg.linear_bias,
        ))),
        SourceKind::Zero => Ok(Box::new(ZeroAction)),
        SourceKind::DreamMpc => Ok(Box::new(PlannerSource::new(cfg)?)),
    }
}
