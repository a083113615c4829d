//! The ten benchmark tasks, re-implemented from dm_control 1.0.50's
//! `suite/<domain>.py`: initial-state randomization, observation layout
//! (the suite's keys concatenated in its order), reward, control timestep.
//! Each function is a transcription of the suite's method of that name.

use std::f64::consts::PI;

use dream_mpc::rng::Rng;
use mujoco_rs::prelude::*;

use super::physics::Physics;
use super::rewards::{tolerance, Sigmoid, DEFAULT_VALUE_AT_MARGIN as VAM};
use crate::task::TaskError;

/// The enum of the suite's benchmark tasks with `ALL` and `name()` from
/// one list (variant => suite name with a dash, the registry name without
/// the `mujoco/` prefix).
macro_rules! suite_tasks {
    ($($task:ident => $name:literal,)*) => {
        /// One of the suite's benchmark tasks.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum SuiteTask {
            $($task,)*
        }

        impl SuiteTask {
            pub const ALL: [SuiteTask; [$($name),*].len()] = [$(SuiteTask::$task,)*];

            /// Suite name with a dash, e.g. `cheetah-run`.
            pub fn name(self) -> &'static str {
                match self {
                    $(SuiteTask::$task => $name,)*
                }
            }
        }
    };
}

suite_tasks! {
    CheetahRun => "cheetah-run",
    WalkerRun => "walker-run",
    WalkerWalk => "walker-walk",
    HopperHop => "hopper-hop",
    HopperStand => "hopper-stand",
    AcrobotSwingup => "acrobot-swingup",
    CartpoleSwingup => "cartpole-swingup",
    PendulumSwingup => "pendulum-swingup",
    ReacherEasy => "reacher-easy",
    FingerSpin => "finger-spin",
}

use SuiteTask::*;

impl SuiteTask {
    pub fn from_name(name: &str) -> Option<SuiteTask> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The suite's model file (in `dm_control/suite/`).
    pub fn model_file(self) -> &'static str {
        match self {
            CheetahRun => "cheetah.xml",
            WalkerRun | WalkerWalk => "walker.xml",
            HopperHop | HopperStand => "hopper.xml",
            AcrobotSwingup => "acrobot.xml",
            CartpoleSwingup => "cartpole.xml",
            PendulumSwingup => "pendulum.xml",
            ReacherEasy => "reacher.xml",
            FingerSpin => "finger.xml",
        }
    }

    /// `control_timestep` passed to `control.Environment`; `None` means one
    /// physics step per control step.
    pub fn control_timestep(self) -> Option<f64> {
        match self {
            WalkerRun | WalkerWalk => Some(0.025),
            HopperHop | HopperStand | FingerSpin => Some(0.02),
            _ => None,
        }
    }

    /// Observation length (sum of the suite's observation key sizes).
    pub fn obs_size(self) -> usize {
        match self {
            CheetahRun => 17,
            WalkerRun | WalkerWalk => 24,
            HopperHop | HopperStand => 15,
            AcrobotSwingup => 6,
            CartpoleSwingup => 5,
            PendulumSwingup => 3,
            ReacherEasy => 6,
            FingerSpin => 9,
        }
    }

    /// Names of the observation keys with their sizes, in order.
    pub fn obs_keys(self) -> &'static [(&'static str, usize)] {
        match self {
            CheetahRun => &[("position", 8), ("velocity", 9)],
            WalkerRun | WalkerWalk => &[("orientations", 14), ("height", 1), ("velocity", 9)],
            HopperHop | HopperStand => &[("position", 6), ("velocity", 7), ("touch", 2)],
            AcrobotSwingup => &[("orientations", 4), ("velocity", 2)],
            CartpoleSwingup => &[("position", 3), ("velocity", 2)],
            PendulumSwingup => &[("orientation", 2), ("velocity", 1)],
            ReacherEasy => &[("position", 2), ("to_target", 2), ("velocity", 2)],
            FingerSpin => &[("position", 4), ("velocity", 3), ("touch", 2)],
        }
    }
}

/// Indices of the named bodies, geoms, sites, sensors and dofs a task
/// reads, resolved once at load so observing and rewarding cost no lookup.
#[derive(Clone, Debug, Default)]
pub struct Ids {
    body: [usize; 2],
    geom: [usize; 2],
    site: [usize; 2],
    /// Start addresses in `sensordata`.
    sensor: [usize; 8],
    dof: usize,
}

/// Resolve the names `task` uses in its model.
pub fn resolve(task: SuiteTask, p: &Physics) -> Result<Ids, TaskError> {
    const B: MjtObjBase = MjtObjBase::mjOBJ_BODY;
    const G: MjtObjBase = MjtObjBase::mjOBJ_GEOM;
    const S: MjtObjBase = MjtObjBase::mjOBJ_SENSOR;
    const ST: MjtObjBase = MjtObjBase::mjOBJ_SITE;
    let mut ids = Ids::default();
    let sensor = |name: &str| -> Result<usize, TaskError> {
        let id = p.id(S, name)?;
        Ok(p.model().sensor_adr()[id] as usize)
    };
    match task {
        CheetahRun => ids.sensor[0] = sensor("torso_subtreelinvel")?,
        WalkerRun | WalkerWalk => {
            ids.body[0] = p.id(B, "torso")?;
            ids.sensor[0] = sensor("torso_subtreelinvel")?;
        }
        HopperHop | HopperStand => {
            ids.body = [p.id(B, "torso")?, p.id(B, "foot")?];
            ids.sensor[0] = sensor("torso_subtreelinvel")?;
            ids.sensor[1] = sensor("touch_toe")?;
            ids.sensor[2] = sensor("touch_heel")?;
        }
        AcrobotSwingup => {
            ids.body = [p.id(B, "upper_arm")?, p.id(B, "lower_arm")?];
            ids.site = [p.id(ST, "target")?, p.id(ST, "tip")?];
        }
        CartpoleSwingup => ids.body[0] = p.id(B, "pole_1")?,
        PendulumSwingup => ids.body[0] = p.id(B, "pole")?,
        ReacherEasy => ids.geom = [p.id(G, "target")?, p.id(G, "finger")?],
        FingerSpin => {
            let names = [
                "proximal",
                "distal",
                "tip",
                "spinner",
                "proximal_velocity",
                "distal_velocity",
                "hinge_velocity",
                "touchtop",
            ];
            for (slot, name) in ids.sensor.iter_mut().zip(names) {
                *slot = sensor(name)?;
            }
            ids.geom[0] = sensor("touchbottom")?; // sensor address, see `observe`
            ids.site = [p.id(ST, "target")?, p.id(ST, "tip")?];
            let hinge = p.id(MjtObjBase::mjOBJ_JOINT, "hinge")?;
            ids.dof = p.model().jnt_dofadr()[hinge] as usize;
        }
    }
    Ok(ids)
}

/// Reacher-easy's target radius (`_BIG_TARGET`).
const REACHER_EASY_TARGET: f64 = 0.05;

/// `Task.initialize_episode`, run between `Physics.reset()` and
/// `Physics.after_reset()`. Draws from `rng`; same distribution as the
/// suite's (numpy) draws.
pub fn initialize_episode(
    task: SuiteTask,
    ids: &Ids,
    p: &mut Physics,
    rng: &mut Rng,
) -> Result<(), TaskError> {
    match task {
        CheetahRun => {
            let njnt = p.model().ffi().njnt as usize;
            for j in 0..njnt {
                if p.model().jnt_limited()[j] {
                    let [lo, hi] = p.model().jnt_range()[j];
                    let adr = p.model().jnt_qposadr()[j] as usize;
                    p.data.qpos_mut()[adr] = rng.uniform_in(lo, hi);
                }
            }
            // Stabilize the model before the actual simulation.
            p.step(200);
            // SAFETY: plain scalar write.
            unsafe { p.data.ffi_mut().time = 0.0 };
        }
        WalkerRun | WalkerWalk | HopperHop | HopperStand => {
            p.randomize_limited_and_rotational_joints(rng)?;
        }
        AcrobotSwingup => {
            let q = p.data.qpos_mut();
            q[0] = rng.uniform_in(-PI, PI);
            q[1] = rng.uniform_in(-PI, PI);
        }
        CartpoleSwingup => {
            let q = p.data.qpos_mut();
            q[0] = 0.01 * rng.normal();
            q[1] = PI + 0.01 * rng.normal();
            for v in p.data.qvel_mut() {
                *v = 0.01 * rng.normal();
            }
        }
        PendulumSwingup => p.data.qpos_mut()[0] = rng.uniform_in(-PI, PI),
        ReacherEasy => {
            p.model_mut().geom_size_mut()[ids.geom[0]][0] = REACHER_EASY_TARGET;
            p.randomize_limited_and_rotational_joints(rng)?;
            let angle = rng.uniform_in(0.0, 2.0 * PI);
            let radius = rng.uniform_in(0.05, 0.20);
            set_reacher_target(ids, p, [radius * angle.sin(), radius * angle.cos()]);
        }
        FingerSpin => {
            let m = p.model_mut();
            m.site_rgba_mut()[ids.site[0]][3] = 0.0;
            m.site_rgba_mut()[ids.site[1]][3] = 0.0;
            m.dof_damping_mut()[ids.dof] = 0.03;
            // `_set_random_joint_angles`: redraw until nothing touches.
            let mut found = false;
            for _ in 0..1000 {
                p.randomize_limited_and_rotational_joints(rng)?;
                p.forward_without_actuation();
                if p.data.ncon() == 0 {
                    found = true;
                    break;
                }
            }
            if !found {
                return Err(TaskError::Backend(
                    "finger-spin: no collision-free initial state after 1000 draws".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Per-episode model parameters that are not part of qpos/qvel (the
/// reacher's target position in the arena plane); empty for other tasks.
pub fn episode_params(task: SuiteTask, ids: &Ids, p: &Physics, out: &mut Vec<f64>) {
    out.clear();
    if task == ReacherEasy {
        let pos = p.model().geom_pos()[ids.geom[0]];
        out.extend_from_slice(&pos[..2]);
    }
}

pub fn set_reacher_target(ids: &Ids, p: &mut Physics, xy: [f64; 2]) {
    let pos = &mut p.model_mut().geom_pos_mut()[ids.geom[0]];
    pos[0] = xy[0];
    pos[1] = xy[1];
}

/// `Task.get_observation`, flattened in key order into `obs`
/// (length `obs_size`). A few dozen loads; no allocation.
pub fn observe(task: SuiteTask, ids: &Ids, p: &Physics, obs: &mut [f64]) {
    let d = &p.data;
    let (qpos, qvel) = (d.qpos(), d.qvel());
    let sd = d.sensordata();
    match task {
        CheetahRun => {
            obs[..8].copy_from_slice(&qpos[1..]);
            obs[8..].copy_from_slice(qvel);
        }
        WalkerRun | WalkerWalk => {
            // xmat[1:, ['xx', 'xz']].ravel()
            for (k, m) in d.xmat()[1..].iter().enumerate() {
                obs[2 * k] = m[0];
                obs[2 * k + 1] = m[2];
            }
            obs[14] = d.xpos()[ids.body[0]][2];
            obs[15..].copy_from_slice(qvel);
        }
        HopperHop | HopperStand => {
            obs[..6].copy_from_slice(&qpos[1..]);
            obs[6..13].copy_from_slice(qvel);
            obs[13] = sd[ids.sensor[1]].ln_1p();
            obs[14] = sd[ids.sensor[2]].ln_1p();
        }
        AcrobotSwingup => {
            let x = d.xmat();
            let (u, l) = (x[ids.body[0]], x[ids.body[1]]);
            obs[..4].copy_from_slice(&[u[2], l[2], u[8], l[8]]);
            obs[4..].copy_from_slice(qvel);
        }
        CartpoleSwingup => {
            let m = d.xmat()[ids.body[0]];
            obs[..3].copy_from_slice(&[qpos[0], m[8], m[2]]);
            obs[3..].copy_from_slice(qvel);
        }
        PendulumSwingup => {
            let m = d.xmat()[ids.body[0]];
            obs.copy_from_slice(&[m[8], m[2], qvel[0]]);
        }
        ReacherEasy => {
            let g = d.geom_xpos();
            let (t, f) = (g[ids.geom[0]], g[ids.geom[1]]);
            obs[..2].copy_from_slice(qpos);
            obs[2] = t[0] - f[0];
            obs[3] = t[1] - f[1];
            obs[4..].copy_from_slice(qvel);
        }
        FingerSpin => {
            let s = &ids.sensor;
            let (tip, spinner) = (&sd[s[2]..s[2] + 3], &sd[s[3]..s[3] + 3]);
            obs[..4].copy_from_slice(&[
                sd[s[0]],
                sd[s[1]],
                tip[0] - spinner[0],
                tip[2] - spinner[2],
            ]);
            obs[4..7].copy_from_slice(&[sd[s[4]], sd[s[5]], sd[s[6]]]);
            obs[7] = sd[s[7]].ln_1p();
            obs[8] = sd[ids.geom[0]].ln_1p();
        }
    }
}

const WALKER_STAND_HEIGHT: f64 = 1.2;
const HOPPER_STAND_HEIGHT: f64 = 0.6;
const HOPPER_HOP_SPEED: f64 = 2.0;

/// `Task.get_reward`, in [0, 1]. A few flops; no allocation.
pub fn reward(task: SuiteTask, ids: &Ids, p: &Physics) -> f64 {
    let d = &p.data;
    let sd = d.sensordata();
    // Walker and hopper: the horizontal speed sensor (sensor 0) at or
    // above `speed`, ramping linearly to 0.5 at half of it.
    let moving = |speed: f64| {
        tolerance(
            sd[ids.sensor[0]],
            (speed, f64::INFINITY),
            speed / 2.0,
            Sigmoid::Linear,
            0.5,
        )
    };
    let walker = |move_speed: f64| {
        let standing = tolerance(
            d.xpos()[ids.body[0]][2],
            (WALKER_STAND_HEIGHT, f64::INFINITY),
            WALKER_STAND_HEIGHT / 2.0,
            Sigmoid::Gaussian,
            VAM,
        );
        let upright = (1.0 + d.xmat()[ids.body[0]][8]) / 2.0;
        let stand = (3.0 * standing + upright) / 4.0;
        stand * (5.0 * moving(move_speed) + 1.0) / 6.0
    };
    let hopper_standing = || {
        let h = d.xipos()[ids.body[0]][2] - d.xipos()[ids.body[1]][2];
        tolerance(h, (HOPPER_STAND_HEIGHT, 2.0), 0.0, Sigmoid::Gaussian, VAM)
    };
    match task {
        CheetahRun => tolerance(
            sd[ids.sensor[0]],
            (10.0, f64::INFINITY),
            10.0,
            Sigmoid::Linear,
            0.0,
        ),
        WalkerRun => walker(8.0),
        WalkerWalk => walker(1.0),
        HopperHop => hopper_standing() * moving(HOPPER_HOP_SPEED),
        HopperStand => {
            let ctrl = d.ctrl();
            let small: f64 = ctrl
                .iter()
                .map(|&u| tolerance(u, (0.0, 0.0), 1.0, Sigmoid::Quadratic, 0.0))
                .sum::<f64>()
                / ctrl.len() as f64;
            hopper_standing() * (small + 4.0) / 5.0
        }
        AcrobotSwingup => {
            let (t, tip) = (d.site_xpos()[ids.site[0]], d.site_xpos()[ids.site[1]]);
            let dist =
                ((t[0] - tip[0]).powi(2) + (t[1] - tip[1]).powi(2) + (t[2] - tip[2]).powi(2))
                    .sqrt();
            let radius = p.model().site_size()[ids.site[0]][0];
            tolerance(dist, (0.0, radius), 1.0, Sigmoid::Gaussian, VAM)
        }
        CartpoleSwingup => {
            let upright = (d.xmat()[ids.body[0]][8] + 1.0) / 2.0;
            let centered =
                (1.0 + tolerance(d.qpos()[0], (0.0, 0.0), 2.0, Sigmoid::Gaussian, VAM)) / 2.0;
            let small_control =
                (4.0 + tolerance(d.ctrl()[0], (0.0, 0.0), 1.0, Sigmoid::Quadratic, 0.0)) / 5.0;
            let small_velocity = d.qvel()[1..]
                .iter()
                .map(|&w| tolerance(w, (0.0, 0.0), 5.0, Sigmoid::Gaussian, VAM))
                .fold(f64::INFINITY, f64::min);
            let small_velocity = (1.0 + small_velocity) / 2.0;
            upright * small_control * small_velocity * centered
        }
        PendulumSwingup => {
            let cos_bound = 8f64.to_radians().cos();
            tolerance(
                d.xmat()[ids.body[0]][8],
                (cos_bound, 1.0),
                0.0,
                Sigmoid::Gaussian,
                VAM,
            )
        }
        ReacherEasy => {
            let g = d.geom_xpos();
            let (t, f) = (g[ids.geom[0]], g[ids.geom[1]]);
            let dist = ((t[0] - f[0]).powi(2) + (t[1] - f[1]).powi(2)).sqrt();
            let sizes = p.model().geom_size();
            let radii = sizes[ids.geom[0]][0] + sizes[ids.geom[1]][0];
            tolerance(dist, (0.0, radii), 0.0, Sigmoid::Gaussian, VAM)
        }
        FingerSpin => {
            if sd[ids.sensor[6]] <= -15.0 {
                1.0
            } else {
                0.0
            }
        }
    }
}
