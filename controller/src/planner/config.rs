//! Planner configuration: which planner, its budget and its weights.
//!
//! The six planners are one algorithm with ingredients switched on or off
//! (see the table in the module docs of [`crate::planner`]);
//! [`PlannerConfig::for_kind`] sets the ingredients a kind is defined by and
//! takes the budget from the bundle's defaults. Every field may then be
//! overridden (ablations), and [`PlannerConfig::validate`] names any bad one.

use crate::bundle::manifest::PlannerDefaults;
use crate::bundle::planner_options::{DreamOptions, Preset, Reuse};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which planner: how candidates are initialized and improved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlannerKind {
    /// The policy prior's mean action alone (Dreamer / TD-MPC2 actor).
    Policy,
    /// CEM over Gaussian action sequences, no policy (PlaNet-style).
    Cem,
    /// MPPI over Gaussian samples plus policy rollouts (TD-MPC2-style).
    Mppi,
    /// Gradient ascent from zero or random sequences, no policy init.
    GradMpc,
    /// Gradient ascent from policy rollouts.
    PolicyGradMpc,
    /// Gradient ascent from policy rollouts plus the previous plan, with
    /// uncertainty regularization (the paper's method; by default exactly
    /// as its authors' code runs it, see [`super::options`]).
    DreamMpc,
}

impl PlannerKind {
    /// All kinds, in the order of the paper's table.
    pub const ALL: [PlannerKind; 6] = [
        PlannerKind::Policy,
        PlannerKind::Cem,
        PlannerKind::Mppi,
        PlannerKind::GradMpc,
        PlannerKind::PolicyGradMpc,
        PlannerKind::DreamMpc,
    ];

    /// Short name used in configs and benchmark tables.
    pub fn name(self) -> &'static str {
        match self {
            PlannerKind::Policy => "policy",
            PlannerKind::Cem => "cem",
            PlannerKind::Mppi => "mppi",
            PlannerKind::GradMpc => "grad_mpc",
            PlannerKind::PolicyGradMpc => "policy_grad_mpc",
            PlannerKind::DreamMpc => "dream_mpc",
        }
    }

    /// Whether the kind improves candidates by gradient ascent.
    pub fn is_gradient(self) -> bool {
        matches!(
            self,
            PlannerKind::GradMpc | PlannerKind::PolicyGradMpc | PlannerKind::DreamMpc
        )
    }

    /// Whether the kind samples (CEM / MPPI).
    pub fn is_sampling(self) -> bool {
        matches!(self, PlannerKind::Cem | PlannerKind::Mppi)
    }
}

/// How Grad-MPC (no policy) initializes its candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradInit {
    /// Every candidate starts at the zero sequence.
    Zeros,
    /// Every candidate starts uniform in [-1, 1].
    Uniform,
}

/// Everything a planner needs besides the model. Actions are normalized
/// to [-1, 1]; step sizes and standard deviations are in those units.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannerConfig {
    pub kind: PlannerKind,
    /// N: gradient candidates (policy rollouts or zero/random sequences);
    /// for MPPI the number of policy rollouts among the samples. With
    /// `options.reuse = candidate` the reused plan comes on top.
    pub candidates: usize,
    /// H: planning horizon (steps).
    pub horizon: usize,
    /// K: gradient steps per tick (see also
    /// `options.extra_iterations_large_action`).
    pub iterations: usize,
    /// Step size of the SGD or Adam step.
    pub step_size: f32,
    /// beta: weight of the uncertainty u in the objective.
    pub beta: f32,
    /// g: discount of the objective, in (0, 1].
    pub discount: f32,
    /// Reuse the previous tick's plan, shifted by one step, in the form of
    /// `options.reuse` (CEM and MPPI: start from the previous mean, shifted).
    pub reuse: bool,
    /// Subtract beta * u from the objective (u's form in `options`).
    pub uncertainty: bool,
    /// Initialization of Grad-MPC.
    pub grad_init: GradInit,
    /// CEM / MPPI: Gaussian samples per iteration.
    pub cem_samples: usize,
    /// CEM / MPPI: elites kept per iteration.
    pub cem_elites: usize,
    /// CEM / MPPI: iterations per tick.
    pub cem_iterations: usize,
    /// CEM / MPPI: initial (and largest) standard deviation.
    pub cem_init_std: f32,
    /// CEM / MPPI: smallest standard deviation.
    pub cem_min_std: f32,
    /// MPPI: temperature of the elite weights exp(temperature * (J - max J)).
    pub cem_temperature: f32,
    /// Seed of the planner's random stream.
    pub seed: u64,
    /// The gradient planners' named options (optimizer, reuse form,
    /// uncertainty form, value heads, choice); see [`super::options`].
    #[serde(default)]
    pub options: DreamOptions,
}

impl PlannerDefaults {
    /// The budget and options of a named preset: `authors` (N = 5, H = 3,
    /// K = 1, step 0.1, beta = 0.01) or `sketch` (N = 8, H = 3, K = 4,
    /// step 0.1, beta = 0.1).
    pub fn preset(preset: Preset) -> Self {
        let (candidates, iterations, beta) = match preset {
            Preset::Authors => (5, 1, 0.01),
            Preset::Sketch => (8, 4, 0.1),
        };
        PlannerDefaults {
            candidates,
            horizon: 3,
            iterations,
            step_size: 0.1,
            beta,
            options: preset.options(),
        }
    }
}

/// A configuration field that is out of range, with its value.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigError {
    /// A count that must be at least one is zero.
    Zero { field: &'static str },
    /// A number outside its range.
    OutOfRange {
        field: &'static str,
        value: f64,
        range: &'static str,
    },
    /// More elites than samples.
    Elites { elites: usize, samples: usize },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Zero { field } => write!(f, "planner.{field} must be at least 1, got 0"),
            ConfigError::OutOfRange {
                field,
                value,
                range,
            } => write!(f, "planner.{field} = {value} is outside {range}"),
            ConfigError::Elites { elites, samples } => write!(
                f,
                "planner.cem_elites = {elites} exceeds the samples per iteration ({samples})"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

impl PlannerConfig {
    /// The configuration of `kind` with the bundle's default budget
    /// (`defaults`, `discount`) and the ingredients that define the kind:
    ///
    /// | kind | init | gradient | uncertainty | reuse |
    /// |---|---|---|---|---|
    /// | policy | policy mean | – | – | – |
    /// | cem | Gaussian | – | – | mean shift |
    /// | mppi | Gaussian + N policy rollouts | – | – | mean shift |
    /// | grad_mpc | uniform | K steps | – | – |
    /// | policy_grad_mpc | N policy rollouts | K steps | – | – |
    /// | dream_mpc | N policy rollouts + previous plan | K steps | yes | yes |
    ///
    /// The form of each ingredient (optimizer, reuse blend or extra
    /// candidate, uncertainty measure, value heads, choice) comes from
    /// `defaults.options` (the authors' by default, see
    /// [`super::options`]); it applies to every kind that uses it.
    /// CEM/MPPI budgets follow TD-MPC2's public defaults scaled to the
    /// horizon (512 samples, 64 elites, 6 iterations).
    pub fn for_kind(kind: PlannerKind, defaults: &PlannerDefaults, discount: f32) -> Self {
        let dream = kind == PlannerKind::DreamMpc;
        PlannerConfig {
            kind,
            candidates: defaults.candidates,
            horizon: defaults.horizon,
            iterations: defaults.iterations,
            step_size: defaults.step_size,
            beta: defaults.beta,
            discount,
            reuse: dream || kind.is_sampling(),
            uncertainty: dream,
            grad_init: GradInit::Uniform,
            cem_samples: 512,
            cem_elites: 64,
            cem_iterations: 6,
            cem_init_std: 2.0,
            cem_min_std: 0.05,
            cem_temperature: 0.5,
            seed: 0,
            options: defaults.options,
        }
    }

    /// Whether the previous plan enters as one extra candidate row.
    pub fn reuse_row(&self) -> bool {
        self.reuse && self.options.reuse == Reuse::Candidate
    }

    /// Whether every candidate is blended with its previous sequence.
    pub fn reuse_blend(&self) -> bool {
        self.reuse && self.options.reuse == Reuse::Blend && self.kind.is_gradient()
    }

    /// K for an action of `action` dimensions: `iterations`, plus
    /// `extra_iterations_large_action` when `action >= 20` (the authors'
    /// heuristic).
    pub fn iterations_for(&self, action: usize) -> usize {
        if action >= 20 {
            self.iterations + self.options.extra_iterations_large_action
        } else {
            self.iterations
        }
    }

    /// Rows of a batched model call: the candidates evaluated together.
    pub fn batch(&self) -> usize {
        match self.kind {
            PlannerKind::Policy => 1,
            PlannerKind::Cem => self.cem_samples,
            PlannerKind::Mppi => self.cem_samples + self.candidates,
            _ => self.candidates + usize::from(self.reuse_row()),
        }
    }

    /// Iterations a tick runs when it is not stopped by the deadline, for
    /// an action of `action` dimensions.
    pub fn budget_iterations(&self, action: usize) -> usize {
        match self.kind {
            PlannerKind::Policy => 0,
            PlannerKind::Cem | PlannerKind::Mppi => self.cem_iterations,
            _ => self.iterations_for(action),
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let zero = |field, v: usize| {
            if v == 0 {
                Err(ConfigError::Zero { field })
            } else {
                Ok(())
            }
        };
        let range = |field, v: f32, ok: bool, range| {
            if ok && v.is_finite() {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange {
                    field,
                    value: v as f64,
                    range,
                })
            }
        };
        zero("horizon", self.horizon)?;
        range(
            "discount",
            self.discount,
            self.discount > 0.0 && self.discount <= 1.0,
            "(0, 1]",
        )?;
        if self.kind.is_gradient() {
            zero("candidates", self.candidates)?;
            range(
                "step_size",
                self.step_size,
                self.step_size > 0.0,
                "(0, inf)",
            )?;
            range("beta", self.beta, self.beta >= 0.0, "[0, inf)")?;
            let o = &self.options;
            range("options.rho", o.rho, (0.0..=1.0).contains(&o.rho), "[0, 1]")?;
            range(
                "options.grad_clip_norm",
                o.grad_clip_norm,
                o.grad_clip_norm >= 0.0,
                "[0, inf) (0 = off)",
            )?;
        }
        if self.kind == PlannerKind::Mppi {
            zero("candidates", self.candidates)?;
        }
        if self.kind.is_sampling() {
            zero("cem_samples", self.cem_samples)?;
            zero("cem_elites", self.cem_elites)?;
            zero("cem_iterations", self.cem_iterations)?;
            let samples = self.batch();
            if self.cem_elites > samples {
                return Err(ConfigError::Elites {
                    elites: self.cem_elites,
                    samples,
                });
            }
            range(
                "cem_min_std",
                self.cem_min_std,
                self.cem_min_std > 0.0,
                "(0, inf)",
            )?;
            range(
                "cem_init_std",
                self.cem_init_std,
                self.cem_init_std >= self.cem_min_std,
                "[cem_min_std, inf)",
            )?;
            range(
                "cem_temperature",
                self.cem_temperature,
                self.cem_temperature > 0.0,
                "(0, inf)",
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> PlannerDefaults {
        PlannerDefaults {
            candidates: 8,
            horizon: 3,
            iterations: 5,
            step_size: 0.05,
            beta: 0.1,
            options: DreamOptions::sketch(),
        }
    }

    #[test]
    fn kinds_switch_the_right_ingredients() {
        let d = defaults();
        let dream = PlannerConfig::for_kind(PlannerKind::DreamMpc, &d, 0.99);
        assert!(dream.reuse && dream.uncertainty);
        assert_eq!(dream.batch(), 9);
        let pg = PlannerConfig::for_kind(PlannerKind::PolicyGradMpc, &d, 0.99);
        assert!(!pg.reuse && !pg.uncertainty);
        assert_eq!(pg.batch(), 8);
        let mppi = PlannerConfig::for_kind(PlannerKind::Mppi, &d, 0.99);
        assert_eq!(mppi.batch(), 520);
        for k in PlannerKind::ALL {
            PlannerConfig::for_kind(k, &d, 0.99).validate().unwrap();
        }
        // The authors' form blends instead of adding a row; K grows by 2
        // for a 20-dimensional action.
        let a = PlannerConfig::for_kind(
            PlannerKind::DreamMpc,
            &PlannerDefaults::preset(Preset::Authors),
            0.99,
        );
        assert!(a.reuse_blend() && !a.reuse_row());
        assert_eq!(a.batch(), 5);
        assert_eq!((a.iterations_for(6), a.iterations_for(21)), (1, 3));
    }

    #[test]
    fn validate_names_the_bad_field() {
        let d = defaults();
        let mut c = PlannerConfig::for_kind(PlannerKind::DreamMpc, &d, 0.99);
        c.discount = 1.5;
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("discount = 1.5"), "{e}");
        c.discount = 0.9;
        c.candidates = 0;
        assert_eq!(
            c.validate().unwrap_err(),
            ConfigError::Zero {
                field: "candidates"
            }
        );
        c.candidates = 4;
        c.options.rho = 1.5;
        assert!(c.validate().unwrap_err().to_string().contains("rho = 1.5"));
        c.options.rho = 0.1;
        c.step_size = f32::NAN;
        assert!(c.validate().unwrap_err().to_string().contains("step_size"));
        let mut m = PlannerConfig::for_kind(PlannerKind::Cem, &d, 0.99);
        m.cem_elites = 600;
        assert_eq!(
            m.validate().unwrap_err(),
            ConfigError::Elites {
                elites: 600,
                samples: 512
            }
        );
    }
}
