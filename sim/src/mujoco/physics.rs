//! One MuJoCo model + data pair driven the way dm_control's `Physics`
//! drives it (dm_control/mujoco/engine.py, `legacy_step=True`), so that the
//! same calls on the same libmujoco give the same numbers bit for bit.

use std::path::Path;

use dream_mpc::rng::Rng;
use mujoco_rs::mujoco_c::{mjtDisableBit, mjtIntegrator, mjtJoint};
use mujoco_rs::prelude::*;

use crate::task::TaskError;

/// mjData owning its own mjModel (tasks edit the model per episode, e.g.
/// the reacher's target, so workers do not share one).
pub type Data = MjData<Box<MjModel>>;

/// A loaded suite model and its simulation state.
pub struct Physics {
    pub data: Data,
}

impl Physics {
    /// Compile the model file at `xml` (includes resolve relative to it).
    /// Costs milliseconds; start-up only.
    pub fn load(xml: &Path) -> Result<Self, TaskError> {
        let model = MjModel::from_xml(xml).map_err(|e| {
            TaskError::Backend(format!(
                "MuJoCo could not load the Control Suite model {}: {e}",
                xml.display()
            ))
        })?;
        let data = MjData::new(Box::new(model));
        Ok(Physics { data })
    }

    pub fn model(&self) -> &MjModel {
        self.data.model()
    }

    /// Mutable model for per-episode edits (sizes and addresses untouched).
    pub fn model_mut(&mut self) -> &mut MjModel {
        // SAFETY: callers only write parameter values (positions, sizes,
        // damping, colours), never counts or address tables.
        unsafe { self.data.model_mut() }
    }

    /// Id of a named object; a missing name means the model file is not
    /// the suite's (wrong dm-control version), reported as a backend error.
    pub fn id(&self, kind: MjtObjBase, name: &str) -> Result<usize, TaskError> {
        self.model().name_to_id(kind, name).ok_or_else(|| {
            TaskError::Backend(format!(
                "the model has no {kind:?} named '{name}'; install dm-control==1.0.50 \
                 (DREAM_MPC_MUJOCO=1 bash scripts/setup.sh)"
            ))
        })
    }

    /// `Physics.reset()`: `mj_resetData`, then `forward` without actuation.
    pub fn reset_data(&mut self) {
        self.data.reset();
        self.forward_without_actuation();
    }

    /// `Physics.after_reset()`: `mj_forward` with actuation disabled.
    pub fn forward_without_actuation(&mut self) {
        let flag = mjtDisableBit::mjDSBL_ACTUATION as i32;
        let before = self.data.model_opt().disableflags;
        self.data.model_opt_mut().disableflags = before | flag;
        self.data.forward();
        self.data.model_opt_mut().disableflags = before;
    }

    /// `Physics.step(nstep)` with `legacy_step=True`: Euler-type
    /// integrators finish the pending `mj_step1` with `mj_step2`, RK4 takes
    /// full steps; both end with `mj_step1` so positions and sensors match
    /// the new state. Allocation-free (MuJoCo's arena is preallocated).
    pub fn step(&mut self, nstep: usize) {
        if self.data.model_opt().integrator != mjtIntegrator::mjINT_RK4 as i32 {
            self.data.step2();
            for _ in 1..nstep {
                self.data.step();
            }
        } else {
            for _ in 0..nstep {
                self.data.step();
            }
        }
        self.data.step1();
    }

    /// dm_control's `randomize_limited_and_rotational_joints` for hinge and
    /// slide joints (the benchmark models have no ball or free joints;
    /// they are refused). Limited joints: uniform in their range;
    /// unlimited hinges: uniform in [-pi, pi); unlimited slides untouched.
    /// Same distribution as the suite, different generator (ours is
    /// xoshiro, the suite's numpy's Mersenne Twister).
    pub fn randomize_limited_and_rotational_joints(
        &mut self,
        rng: &mut Rng,
    ) -> Result<(), TaskError> {
        let njnt = self.model().ffi().njnt as usize;
        for j in 0..njnt {
            let m = self.model();
            let kind = m.jnt_type()[j];
            let limited = m.jnt_limited()[j];
            let [lo, hi] = m.jnt_range()[j];
            let adr = m.jnt_qposadr()[j] as usize;
            let value = match (kind, limited) {
                (mjtJoint::mjJNT_HINGE | mjtJoint::mjJNT_SLIDE, true) => {
                    Some(rng.uniform_in(lo, hi))
                }
                (mjtJoint::mjJNT_HINGE, false) => {
                    Some(rng.uniform_in(-std::f64::consts::PI, std::f64::consts::PI))
                }
                (mjtJoint::mjJNT_SLIDE, false) => None,
                (other, _) => {
                    return Err(TaskError::Backend(format!(
                        "joint {j} has type {other:?}; only hinge and slide joints are randomized"
                    )))
                }
            };
            if let Some(v) = value {
                self.data.qpos_mut()[adr] = v;
            }
        }
        Ok(())
    }
}
