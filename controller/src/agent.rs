//! # Agent: observation in, bounded action out
//!
//! The whole robot-side pipeline over one loaded [`Bundle`]: normalize the
//! observation with the manifest's mean/std, encode it to the latent z0
//! (`encoder` module), and plan from z0 with any [`PlannerKind`]; the
//! chosen action is normalized, in [-1, 1]. Actuator units are the
//! caller's one mapping: the control tick's `offset + scale * a`, checked
//! at start against the manifest's bounds, or the simulator's own action
//! bounds. The ROS 2 node, the simulated evaluation
//! (`dream-mpc-sim eval --bundle <dir> --planners ...`)
//! and the trainer's evaluation all act through this one type, so what is
//! measured is what runs on a robot.
//!
//! An agent holds shared handles to the bundle's compiled modules and a
//! copy of the manifest's normalization, not a borrow of the
//! bundle: build it from a `&Bundle` (or an `Arc<Bundle>`), then drop or
//! share the bundle as you like.
//!
//! Everything is allocated in [`Agent::new`]; [`Agent::act`] allocates
//! nothing (checked in `tests/agent.rs`).

use crate::bundle::manifest::{LatentSpec, ObservationSpec};
use crate::bundle::BundleError;
use crate::kernels::{Program, Tape};
use crate::load::Bundle;
use crate::planner::bundle_model::BundleModel;
use crate::planner::{ConfigError, PlanError, PlanStatus, Planner, PlannerConfig, PlannerKind};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// Why an agent cannot be built, or cannot act on an input.
#[derive(Debug)]
pub enum AgentError {
    Bundle(BundleError),
    Config(ConfigError),
    /// An unknown planner name (the known ones are listed).
    UnknownPlanner(String),
    /// The observation has the wrong length.
    ObservationSize {
        expected: usize,
        got: usize,
    },
    /// The observation holds NaN or infinity (element index).
    NonFiniteObservation(usize),
    /// The bundle is recurrent; version-1 agents plan on vector latents.
    UnsupportedLatent(String),
    Plan(PlanError),
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::Bundle(e) => write!(f, "{e}"),
            AgentError::Config(e) => write!(f, "{e}"),
            AgentError::UnknownPlanner(n) => write!(
                f,
                "unknown planner `{n}` (known: {})",
                PlannerKind::ALL.map(|k| k.name()).join(", ")
            ),
            AgentError::ObservationSize { expected, got } => write!(
                f,
                "observation has {got} elements, the bundle expects {expected}"
            ),
            AgentError::NonFiniteObservation(i) => {
                write!(f, "observation element {i} is NaN or infinite")
            }
            AgentError::UnsupportedLatent(k) => {
                write!(f, "latent layout `{k}` is not supported by this agent")
            }
            AgentError::Plan(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AgentError {}

crate::error_from!(AgentError {
    Bundle(BundleError),
    Config(ConfigError),
});

/// A planner kind by its config name; `-` and `_` are interchangeable
/// (`dream-mpc` = `dream_mpc`).
pub fn planner_kind(name: &str) -> Result<PlannerKind, AgentError> {
    let n = name.replace('-', "_");
    PlannerKind::ALL
        .into_iter()
        .find(|k| k.name() == n)
        .ok_or_else(|| AgentError::UnknownPlanner(name.to_string()))
}

/// Load a bundle and verify it as `dream-mpc check` does (the kernels
/// reproduce the libtorch references of every module) before any actuator
/// is driven; the one line that says so. Start-up only: compiles and runs
/// every module on its references.
pub fn load_verified(
    dir: &std::path::Path,
    limits: crate::bundle::Limits,
    weights: crate::kernels::Weights,
) -> Result<(Bundle, String), String> {
    let err = |e: &dyn fmt::Display| format!("bundle {}: {e}", dir.display());
    let bundle = Bundle::load_as(dir, limits, weights).map_err(|e| err(&e))?;
    let t0 = Instant::now();
    let report = bundle.verify().map_err(|e| err(&e))?;
    let line = format!(
        "bundle {} ({} weights): {} modules match their libtorch references (worst {:.1e}, tolerance {:.0e}), verified in {:.0} ms",
        dir.display(),
        weights.name(),
        report.modules.len(),
        report.modules.iter().map(|m| m.worst()).fold(0.0f32, f32::max),
        report.tolerance,
        t0.elapsed().as_secs_f64() * 1e3
    );
    Ok((bundle, line))
}

/// What one [`Agent::act`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    pub status: PlanStatus,
    /// Predicted J of the chosen plan (None for the policy planner).
    pub predicted_return: Option<f32>,
    /// Completed iterations.
    pub iterations: usize,
    /// Model rows run forward and backward (encoder included).
    pub forward_rows: u64,
    pub backward_rows: u64,
    /// Multiply-adds of the tick (encoder included).
    pub flops: u64,
}

/// An observation the agent may plan on: every element finite (in f32),
/// of the size it was checked against. Made by [`Observation::checked`]
/// (or, inside the crate, by the control tick, which has just checked the
/// same), so the check runs once per tick on every path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation<'a>(&'a [f32]);

impl<'a> Observation<'a> {
    /// `values` when it has `size` elements and each is finite; else the
    /// error naming the size or the first non-finite element.
    /// Cost: O(size), no allocation.
    pub fn checked(values: &'a [f32], size: usize) -> Result<Self, AgentError> {
        if values.len() != size {
            return Err(AgentError::ObservationSize {
                expected: size,
                got: values.len(),
            });
        }
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            return Err(AgentError::NonFiniteObservation(i));
        }
        Ok(Observation(values))
    }

    /// `values` that the control tick has checked (its configured size,
    /// each element finite in f32; `Controller::tick`). Cost: none.
    pub(crate) fn checked_by_tick(values: &'a [f32]) -> Self {
        debug_assert!(values.iter().all(|x| x.is_finite()));
        Observation(values)
    }

    /// The elements.
    pub fn as_slice(&self) -> &'a [f32] {
        self.0
    }
}

/// Observation-to-action pipeline over a bundle (see the module docs).
pub struct Agent {
    observation: ObservationSpec,
    encoder: Arc<Program>,
    encoder_tape: Tape,
    model: BundleModel,
    planner: Planner<BundleModel>,
    obs_norm: Vec<f32>,
    z: Vec<f32>,
    /// Normalized action in [-1, 1] of the last tick.
    action: Vec<f32>,
}

impl Agent {
    /// Builds the model adapter, the encoder tape and the planner workspace
    /// for `config` (start-up only; allocates).
    pub fn new(bundle: &Bundle, config: PlannerConfig) -> Result<Self, AgentError> {
        let m = &bundle.manifest;
        if !matches!(m.latent, LatentSpec::Vector { .. }) {
            return Err(AgentError::UnsupportedLatent(format!("{:?}", m.latent)));
        }
        let encoder = Arc::clone(bundle.module("encoder")?);
        let model = BundleModel::new(bundle)?;
        let planner = Planner::new(&model, config)?;
        Ok(Agent {
            observation: m.observation.clone(),
            encoder_tape: encoder.tape(1, 1),
            encoder,
            model,
            planner,
            obs_norm: vec![0.0; m.observation.size],
            z: vec![0.0; m.latent.size()],
            action: vec![0.0; m.action.size],
        })
    }

    /// [`Agent::new`] with the bundle's default budget for `kind`.
    pub fn with_defaults(
        bundle: &Bundle,
        kind: PlannerKind,
        seed: u64,
    ) -> Result<Self, AgentError> {
        let m = &bundle.manifest;
        let mut c = PlannerConfig::for_kind(kind, &m.planner, m.discount);
        c.seed = seed;
        Self::new(bundle, c)
    }

    pub fn planner(&self) -> &Planner<BundleModel> {
        &self.planner
    }

    /// The planner, for its run-time tunables ([`Planner::set_tunables`]).
    pub fn planner_mut(&mut self) -> &mut Planner<BundleModel> {
        &mut self.planner
    }

    /// Observation size the bundle expects.
    pub fn obs_size(&self) -> usize {
        self.obs_norm.len()
    }

    /// Action size of the bundle.
    pub fn action_size(&self) -> usize {
        self.action.len()
    }

    /// The normalized action (each element in [-1, 1]) of the last tick.
    pub fn normalized_action(&self) -> &[f32] {
        &self.action
    }

    /// Forgets the previous plan (new episode).
    pub fn reset(&mut self) {
        self.planner.reset();
    }

    /// One tick: checks `obs` ([`Observation::checked`]: size, finite),
    /// then [`Agent::act_on`] it.
    ///
    /// Cost: O(observation size) for the check plus [`Agent::act_on`].
    /// Allocates nothing.
    pub fn act(&mut self, obs: &[f32], deadline: Instant) -> Result<Decision, AgentError> {
        let obs = Observation::checked(obs, self.observation.size)?;
        self.act_on(obs, deadline)
    }

    /// One tick on an observation already checked: normalizes and encodes
    /// it and plans until `deadline`; the chosen normalized action is
    /// [`Agent::normalized_action`]. The control tick checks once and
    /// calls this; other callers use [`Agent::act`].
    ///
    /// Cost: one encoder row forward plus the planner's tick (see
    /// [`Planner::plan`]). Allocates nothing.
    pub fn act_on(
        &mut self,
        obs: Observation<'_>,
        deadline: Instant,
    ) -> Result<Decision, AgentError> {
        let spec = &self.observation;
        let obs = obs.as_slice();
        if obs.len() != spec.size {
            // O(1): an observation checked against another size
            return Err(AgentError::ObservationSize {
                expected: spec.size,
                got: obs.len(),
            });
        }
        for (((n, o), mean), std) in self
            .obs_norm
            .iter_mut()
            .zip(obs)
            .zip(&spec.mean)
            .zip(&spec.std)
        {
            *n = (o - mean) / std;
        }
        self.encoder.forward(
            &mut self.encoder_tape,
            0,
            &[&self.obs_norm],
            &mut [&mut self.z],
        );
        let enc_flops = self.encoder.flops(1).0;
        let r = self
            .planner
            .plan(&self.model, &self.z, deadline)
            .map_err(AgentError::Plan)?;
        self.action.copy_from_slice(r.action.as_slice());
        Ok(Decision {
            status: r.status,
            predicted_return: r.j,
            iterations: r.iterations,
            forward_rows: r.evals.forward + 1,
            backward_rows: r.evals.backward,
            flops: r.evals.flops + enc_flops,
        })
    }
}
