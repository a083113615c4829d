//! The named options of the gradient planners: every point where the
//! Dream-MPC authors' public implementation (RchenHuang/dreammmpc,
//! `dream_mpc_tdmpc2.py`, `_plan`) and this project's first variant (the
//! design sketch) differ. The bundle's planner section carries them
//! (`"options": {...}`, each field optional), so a model ships with the
//! planner it was tuned for; absent fields take the authors' values.
//!
//! | option | `authors` (default) | `sketch` (the earlier default) |
//! |---|---|---|
//! | `optimizer` | `sgd` | `adam` |
//! | `grad_clip_norm` | 20 (norm of the whole `[H, N, A]` gradient) | 0 (off) |
//! | `extra_iterations_large_action` | 2 (K += 2 when the action has >= 20 dims) | 0 |
//! | `clamp_each_step` | false (clamped once, at the end) | true |
//! | `policy_mean_row` | false (all N rows sampled) | true (row 0 is the mean) |
//! | `reuse` | `blend`, `rho` = 0.1 | `candidate` |
//! | `uncertainty` | `mean_std` (mean x unbiased std of the Q heads) | `std` (population std) |
//! | `uncertainty_at` | `next_state`: (z_{t+1}, a_t) and (z_H, a_H), not discounted | `current_state`: (z_t, a_t), discounted |
//! | `uncertainty_gradient` | false (only picks the candidate) | true |
//! | `value_heads` | `two_random` | `all` |
//! | `value_action` | `sample` (a ~ pi(z_H)) | `mean` (tanh mu(z_H)) |
//! | `choice` | `last_eval` | `best_evaluated` |
//!
//! This module depends on nothing else in the crate (the manifest embeds
//! it).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How the action sequences are moved along the gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    /// Plain gradient ascent: a += step_size * dJ/da.
    Sgd,
    /// Adam (Kingma & Ba defaults) with step size `step_size`.
    Adam,
}

/// How the previous tick's plan re-enters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reuse {
    /// Every candidate blended with the previous tick's candidate of the
    /// same index, shifted one step (last step repeated):
    /// a = rho prev + (1 - rho) a.
    Blend,
    /// The previous best sequence, shifted one step (last step from the
    /// policy mean), as one more candidate.
    Candidate,
}

/// The uncertainty u of one (z, a) from the decoded Q heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Uncertainty {
    /// mean_i Q_i x std_i Q_i, the std with Bessel's correction (n - 1);
    /// zero for a single head.
    MeanStd,
    /// Population standard deviation of the heads.
    Std,
}

/// Where u is measured and whether it is discounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UncertaintyAt {
    /// At (z_{t+1}, a_t) for t < H, plus (z_H, a_H) at the terminal value's
    /// action: H + 1 terms, each weighted beta (no discount).
    NextState,
    /// At (z_t, a_t) for t < H, weighted beta g^t.
    CurrentState,
}

/// Which Q heads make the terminal value V(z_H).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueHeads {
    /// Mean of two distinct heads drawn at random per evaluation (TD-MPC2's
    /// `Q(.., return_type='avg')`), the same two for every candidate.
    TwoRandom,
    /// Mean of all heads.
    All,
}

/// The action at which V(z_H) is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueAction {
    /// a_H = tanh(mu + exp(log_std) eps), one eps per evaluation shared by
    /// every candidate (the authors' `vmap(..., randomness="same")`).
    Sample,
    /// a_H = tanh(mu).
    Mean,
}

/// Which candidate's first action a tick returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    /// The argmax of J in the last evaluation (which precedes the last
    /// step); the action is that candidate's sequence after the step.
    LastEval,
    /// The best J of every sequence evaluated this tick (each step is
    /// followed by a re-evaluation).
    BestEvaluated,
}

/// Every option of the gradient planners (see the module table).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DreamOptions {
    pub optimizer: Optimizer,
    /// Largest 2-norm of the gradient of all candidates together, as
    /// `torch.nn.utils.clip_grad_norm_` on the `[H, N, A]` tensor; 0 = off.
    pub grad_clip_norm: f32,
    /// Iterations added to K when the action has 20 or more dimensions.
    pub extra_iterations_large_action: usize,
    /// Clamp the sequences to [-1, 1] after every step (else only the
    /// returned action and the kept plan are clamped).
    pub clamp_each_step: bool,
    /// Row 0 of the policy candidates is the mean rollout (eps = 0).
    pub policy_mean_row: bool,
    pub reuse: Reuse,
    /// rho of [`Reuse::Blend`], in [0, 1].
    pub rho: f32,
    pub uncertainty: Uncertainty,
    pub uncertainty_at: UncertaintyAt,
    /// Differentiate the uncertainty term (else it only ranks candidates).
    pub uncertainty_gradient: bool,
    pub value_heads: ValueHeads,
    pub value_action: ValueAction,
    pub choice: Choice,
}

impl Default for DreamOptions {
    fn default() -> Self {
        DreamOptions::authors()
    }
}

impl DreamOptions {
    /// The authors' implementation (the default).
    pub fn authors() -> Self {
        DreamOptions {
            optimizer: Optimizer::Sgd,
            grad_clip_norm: 20.0,
            extra_iterations_large_action: 2,
            clamp_each_step: false,
            policy_mean_row: false,
            reuse: Reuse::Blend,
            rho: 0.1,
            uncertainty: Uncertainty::MeanStd,
            uncertainty_at: UncertaintyAt::NextState,
            uncertainty_gradient: false,
            value_heads: ValueHeads::TwoRandom,
            value_action: ValueAction::Sample,
            choice: Choice::LastEval,
        }
    }

    /// This project's earlier default (the design sketch's variant).
    pub fn sketch() -> Self {
        DreamOptions {
            optimizer: Optimizer::Adam,
            grad_clip_norm: 0.0,
            extra_iterations_large_action: 0,
            clamp_each_step: true,
            policy_mean_row: true,
            reuse: Reuse::Candidate,
            rho: 0.0,
            uncertainty: Uncertainty::Std,
            uncertainty_at: UncertaintyAt::CurrentState,
            uncertainty_gradient: true,
            value_heads: ValueHeads::All,
            value_action: ValueAction::Mean,
            choice: Choice::BestEvaluated,
        }
    }
}

/// A named set of options and budget: `authors` or `sketch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// N = 5, H = 3, K = 1 SGD step of 0.1, beta = 0.01, authors' options.
    Authors,
    /// N = 8 (+ the previous plan), H = 3, K = 4 Adam steps of 0.1,
    /// beta = 0.1, the sketch's options.
    Sketch,
}

impl Preset {
    pub const ALL: [Preset; 2] = [Preset::Authors, Preset::Sketch];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Authors => "authors",
            Preset::Sketch => "sketch",
        }
    }

    pub fn options(self) -> DreamOptions {
        match self {
            Preset::Authors => DreamOptions::authors(),
            Preset::Sketch => DreamOptions::sketch(),
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown planner preset `{s}` (authors, sketch)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_take_the_authors_values_and_unknown_ones_are_refused() {
        let o: DreamOptions = serde_json::from_str(r#"{"optimizer": "adam"}"#).unwrap();
        assert_eq!(o.optimizer, Optimizer::Adam);
        assert_eq!(o.choice, Choice::LastEval);
        let e = serde_json::from_str::<DreamOptions>(r#"{"optimiser": "adam"}"#).unwrap_err();
        assert!(e.to_string().contains("optimiser"), "{e}");
        let s = serde_json::to_string(&DreamOptions::sketch()).unwrap();
        assert!(s.contains(r#""uncertainty_at":"current_state""#), "{s}");
        assert_eq!("sketch".parse::<Preset>(), Ok(Preset::Sketch));
        assert!("paper".parse::<Preset>().is_err());
    }
}
