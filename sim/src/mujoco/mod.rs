//! DeepMind Control Suite tasks on real MuJoCo physics (cargo feature
//! `mujoco`), registered as `mujoco/<domain>-<task>`.
//!
//! The model files are the suite's own XML, read at run time from the
//! installed `dm-control==1.0.50` package (never copied into this
//! repository); libmujoco is the `libmujoco.so.3.17.0` of the
//! `mujoco==3.17.0` wheel, linked through `mujoco-rs`. Both come from
//! `DREAM_MPC_MUJOCO=1 bash scripts/setup.sh` + `source scripts/env.sh`.
//!
//! Physics calls follow dm_control's `Physics` exactly (`legacy_step`,
//! actuation disabled in `after_reset`), so from the same MuJoCo state and
//! actions the observations and rewards equal the suite's. Initial states
//! are drawn from the suite's distributions with this crate's generator
//! (not numpy's), so a seed gives a different state than in Python.

mod physics;
pub mod rewards;
mod suite;

use std::path::{Path, PathBuf};

use dream_mpc::rng::Rng;
use mujoco_rs::mujoco_c::mjtState;

pub use suite::SuiteTask;

use crate::task::{check_action, check_buffer, Backend, Step, Task, TaskError, TaskSpec};
use physics::Physics;
use suite::Ids;

/// Registry prefix of the MuJoCo-backed tasks.
pub const PREFIX: &str = "mujoco/";

/// MuJoCo version the suite's model files and our bindings expect.
pub const MUJOCO_VERSION: &str = "3.17.0";

/// Registry names of all MuJoCo tasks, e.g. `mujoco/cheetah-run`.
pub fn names() -> Vec<String> {
    SuiteTask::ALL
        .iter()
        .map(|t| format!("{PREFIX}{}", t.name()))
        .collect()
}

/// Build a MuJoCo task by registry name (`mujoco/<task>`).
pub fn make(name: &str) -> Result<Box<dyn Task>, TaskError> {
    Ok(Box::new(MujocoTask::new(name)?))
}

/// Where the suite's model files are: `$DM_CONTROL_SUITE_DIR` (set by
/// `scripts/env.sh`), else `dm_control/suite` in `$VIRTUAL_ENV` or in this
/// repository's `.venv`. The error names what to install.
pub fn suite_dir() -> Result<PathBuf, TaskError> {
    let mut tried: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("DM_CONTROL_SUITE_DIR") {
        tried.push(PathBuf::from(dir));
    }
    let venvs = [
        std::env::var_os("VIRTUAL_ENV").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv")),
    ];
    for venv in venvs.into_iter().flatten() {
        if let Ok(entries) = std::fs::read_dir(venv.join("lib")) {
            for e in entries.flatten() {
                tried.push(e.path().join("site-packages/dm_control/suite"));
            }
        }
    }
    find_suite_dir(tried)
}

/// The first of `tried` that holds the suite's model files and their
/// `common/` assets; else an error listing `tried` and what to install.
fn find_suite_dir(tried: Vec<PathBuf>) -> Result<PathBuf, TaskError> {
    for dir in &tried {
        if dir.join("cheetah.xml").is_file() && dir.join("common/materials.xml").is_file() {
            return Ok(dir.clone());
        }
    }
    let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(TaskError::Backend(format!(
        "the DeepMind Control Suite model files (dm_control/suite/*.xml) were not found \
         (looked in: [{}]); install them with `DREAM_MPC_MUJOCO=1 bash scripts/setup.sh` \
         (pip install mujoco==3.17.0 dm-control==1.0.50) and `source scripts/env.sh`, \
         or set DM_CONTROL_SUITE_DIR",
        tried.join(", ")
    )))
}

/// A suite task on MuJoCo behind the [`Task`] trait.
///
/// Owns its own mjModel + mjData (about a few hundred kB), so one per
/// worker thread steps in parallel with no sharing.
pub struct MujocoTask {
    spec: TaskSpec,
    task: SuiteTask,
    physics: Physics,
    ids: Ids,
    steps: usize,
    reset_done: bool,
}

impl MujocoTask {
    /// Load `mujoco/<task>` (or the bare suite name). Reads and compiles
    /// the model file: milliseconds, start-up only.
    pub fn new(name: &str) -> Result<Self, TaskError> {
        let bare = name.strip_prefix(PREFIX).unwrap_or(name);
        let task = SuiteTask::from_name(bare).ok_or_else(|| TaskError::UnknownTask {
            name: name.to_string(),
            known: names(),
        })?;
        Self::from_suite_task(task)
    }

    pub fn from_suite_task(task: SuiteTask) -> Result<Self, TaskError> {
        let version = mujoco_rs::mujoco_version();
        if version != MUJOCO_VERSION {
            return Err(TaskError::Backend(format!(
                "libmujoco is version {version}, the suite tasks need {MUJOCO_VERSION} \
                 (DREAM_MPC_MUJOCO=1 bash scripts/setup.sh installs mujoco==3.17.0)"
            )));
        }
        let physics = Physics::load(&suite_dir()?.join(task.model_file()))?;
        let ids = suite::resolve(task, &physics)?;
        let m = physics.model().ffi();
        let dt = m.opt.timestep;
        let substeps = match task.control_timestep() {
            None => 1,
            Some(ct) => {
                let n = (ct / dt).round();
                if (n * dt - ct).abs() > 1e-12 * ct.max(1.0) || n < 1.0 {
                    return Err(TaskError::Backend(format!(
                        "{}: control timestep {ct} is not a multiple of the physics timestep {dt}",
                        task.name()
                    )));
                }
                n as usize
            }
        };
        let spec = TaskSpec {
            name: format!("{PREFIX}{}", task.name()),
            backend: Backend::Mujoco,
            obs_size: task.obs_size(),
            action_size: m.nu as usize,
            control_timestep: dt * substeps as f64,
            physics_substeps: substeps,
            episode_len: 1000,
        };
        Ok(MujocoTask {
            spec,
            task,
            physics,
            ids,
            steps: 0,
            reset_done: false,
        })
    }

    pub fn suite_task(&self) -> SuiteTask {
        self.task
    }

    /// Size of MuJoCo's full integration state (`mjSTATE_INTEGRATION`).
    pub fn integration_state_size(&self) -> usize {
        self.physics
            .model()
            .state_size(mjtState::mjSTATE_INTEGRATION as u32)
    }

    /// Copy MuJoCo's full integration state (qpos, qvel, act, warm start,
    /// ctrl, time, ...) into `out` (length `integration_state_size`).
    pub fn integration_state(&self, out: &mut [f64]) -> Result<(), TaskError> {
        check_buffer("integration state", out, self.integration_state_size())?;
        let s = self
            .physics
            .data
            .state(mjtState::mjSTATE_INTEGRATION as u32);
        out.copy_from_slice(&s);
        Ok(())
    }

    /// Overwrite the full integration state (as written by
    /// `mujoco.mj_getState(..., mjSTATE_INTEGRATION)` in Python), recompute
    /// derived quantities as dm_control's `after_reset` does, and write
    /// the observation. With the same per-episode parameters (see
    /// [`Self::set_episode_params`]) the next steps reproduce the suite's
    /// numbers exactly.
    pub fn set_integration_state(
        &mut self,
        state: &[f64],
        obs: &mut [f64],
    ) -> Result<(), TaskError> {
        check_buffer("integration state", state, self.integration_state_size())?;
        check_buffer("observation", obs, self.spec.obs_size)?;
        self.physics
            .data
            .set_state(state, mjtState::mjSTATE_INTEGRATION as u32)
            .map_err(|e| TaskError::Backend(format!("mj_setState: {e}")))?;
        self.physics.forward_without_actuation();
        suite::observe(self.task, &self.ids, &self.physics, obs);
        Ok(())
    }

    /// Per-episode model parameters outside qpos/qvel: the reacher's target
    /// `[x, y]`; empty for the other tasks.
    pub fn episode_params(&self) -> Vec<f64> {
        let mut v = Vec::new();
        suite::episode_params(self.task, &self.ids, &self.physics, &mut v);
        v
    }

    /// Set what [`Self::episode_params`] returns (reacher: target `[x, y]`).
    pub fn set_episode_params(&mut self, params: &[f64]) -> Result<(), TaskError> {
        let expected = if self.task == SuiteTask::ReacherEasy {
            2
        } else {
            0
        };
        check_buffer("episode parameters", params, expected)?;
        if expected == 2 {
            suite::set_reacher_target(&self.ids, &mut self.physics, [params[0], params[1]]);
        }
        Ok(())
    }
}

impl Task for MujocoTask {
    fn spec(&self) -> &TaskSpec {
        &self.spec
    }

    /// dm_control's `Environment.reset`: `mj_resetData`, the task's
    /// `initialize_episode` (cheetah also settles 200 physics steps), then
    /// `mj_forward` without actuation.
    fn reset(&mut self, seed: u64, obs: &mut [f64]) -> Result<(), TaskError> {
        check_buffer("observation", obs, self.spec.obs_size)?;
        let mut rng = Rng::new(seed);
        self.physics.reset_data();
        suite::initialize_episode(self.task, &self.ids, &mut self.physics, &mut rng)?;
        self.physics.forward_without_actuation();
        self.steps = 0;
        self.reset_done = true;
        suite::observe(self.task, &self.ids, &self.physics, obs);
        Ok(())
    }

    /// One control step: `ctrl = clamp(action, -1, 1)` (every benchmark
    /// actuator has control range [-1, 1]), `physics_substeps` MuJoCo steps,
    /// reward and observation. Allocation-free.
    fn step(&mut self, action: &[f64], obs: &mut [f64]) -> Result<Step, TaskError> {
        if !self.reset_done {
            return Err(TaskError::NotReset);
        }
        if self.steps >= self.spec.episode_len {
            return Err(TaskError::EpisodeOver);
        }
        check_action(action, self.spec.action_size)?;
        check_buffer("observation", obs, self.spec.obs_size)?;
        for (c, &a) in self.physics.data.ctrl_mut().iter_mut().zip(action) {
            *c = a.clamp(-1.0, 1.0);
        }
        self.physics.step(self.spec.physics_substeps);
        let reward = suite::reward(self.task, &self.ids, &self.physics);
        suite::observe(self.task, &self.ids, &self.physics, obs);
        self.steps += 1;
        Ok(Step {
            reward,
            done: self.steps >= self.spec.episode_len,
        })
    }

    fn state(&self, qpos: &mut [f64], qvel: &mut [f64]) {
        qpos.copy_from_slice(self.physics.data.qpos());
        qvel.copy_from_slice(self.physics.data.qvel());
    }

    fn state_size(&self) -> (usize, usize) {
        let m = self.physics.model().ffi();
        (m.nq as usize, m.nv as usize)
    }

    /// Writes qpos/qvel and recomputes with `mj_forward` (actuation off),
    /// like dm_control's `set_state` + `after_reset`. The solver warm start
    /// is kept, so contact-rich tasks may differ from a Python run in the
    /// last bits; [`MujocoTask::set_integration_state`] matches exactly.
    fn set_state(&mut self, qpos: &[f64], qvel: &[f64], obs: &mut [f64]) -> Result<(), TaskError> {
        let (nq, nv) = self.state_size();
        check_buffer("qpos", qpos, nq)?;
        check_buffer("qvel", qvel, nv)?;
        check_buffer("observation", obs, self.spec.obs_size)?;
        self.physics.data.qpos_mut().copy_from_slice(qpos);
        self.physics.data.qvel_mut().copy_from_slice(qvel);
        self.physics.forward_without_actuation();
        suite::observe(self.task, &self.ids, &self.physics, obs);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cartpole() -> (MujocoTask, Vec<f64>) {
        let t = MujocoTask::new("mujoco/cartpole-swingup").unwrap();
        let obs = vec![0.0; t.spec().obs_size];
        (t, obs)
    }

    #[test]
    fn registry_names_all_ten_tasks_and_builds_each() {
        let names = names();
        assert_eq!(names.len(), 10);
        for name in &names {
            assert!(name.starts_with(PREFIX), "{name}");
            let task = make(name).unwrap();
            assert_eq!(&task.spec().name, name);
            assert_eq!(task.spec().backend, Backend::Mujoco);
        }
    }

    #[test]
    fn unknown_name_lists_known_tasks() {
        let Err(TaskError::UnknownTask { name, known }) = MujocoTask::new("mujoco/cheetah-fly")
        else {
            panic!("expected UnknownTask");
        };
        assert_eq!(name, "mujoco/cheetah-fly");
        assert!(known.contains(&"mujoco/cheetah-run".to_string()));
    }

    #[test]
    fn missing_suite_files_name_what_to_install() {
        let err = find_suite_dir(vec![PathBuf::from("/nonexistent/dm_control/suite")]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("dm-control==1.0.50"), "{msg}");
        assert!(msg.contains("/nonexistent/dm_control/suite"), "{msg}");
    }

    #[test]
    fn bad_actions_and_misuse_are_refused() {
        let (mut t, mut obs) = cartpole();
        assert_eq!(t.step(&[0.0], &mut obs), Err(TaskError::NotReset));
        t.reset(1, &mut obs).unwrap();
        let nan = t.step(&[f64::NAN], &mut obs).unwrap_err();
        assert!(
            matches!(nan, TaskError::NonFiniteAction { index: 0, .. }),
            "{nan:?}"
        );
        assert_eq!(
            t.step(&[0.0, 0.0], &mut obs),
            Err(TaskError::ActionSize {
                expected: 1,
                got: 2
            })
        );
        let mut short = vec![0.0; 2];
        assert!(matches!(
            t.step(&[0.0], &mut short),
            Err(TaskError::BufferSize { .. })
        ));
        for k in 0..1000 {
            let s = t.step(&[0.3], &mut obs).unwrap();
            assert_eq!(s.done, k == 999);
            assert!((0.0..=1.0).contains(&s.reward));
        }
        assert_eq!(t.step(&[0.0], &mut obs), Err(TaskError::EpisodeOver));
    }

    #[test]
    fn out_of_range_actions_are_clamped_to_the_control_range() {
        let (mut a, mut oa) = cartpole();
        let (mut b, mut ob) = cartpole();
        a.reset(3, &mut oa).unwrap();
        b.reset(3, &mut ob).unwrap();
        let ra = a.step(&[7.5], &mut oa).unwrap();
        let rb = b.step(&[1.0], &mut ob).unwrap();
        assert_eq!(oa, ob);
        assert_eq!(ra, rb);
    }

    #[test]
    fn same_seed_same_episode_different_seed_different_state() {
        for name in [
            "mujoco/cheetah-run",
            "mujoco/reacher-easy",
            "mujoco/finger-spin",
        ] {
            let mut t = MujocoTask::new(name).unwrap();
            let n = t.spec().obs_size;
            let (mut o1, mut o2, mut o3) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            t.reset(7, &mut o1).unwrap();
            let p1 = t.episode_params();
            t.reset(8, &mut o3).unwrap();
            t.reset(7, &mut o2).unwrap();
            assert_eq!(o1, o2, "{name}");
            assert_eq!(p1, t.episode_params(), "{name}");
            assert_ne!(o1, o3, "{name}");
        }
    }

    #[test]
    fn set_state_round_trips_through_state() {
        let mut t = MujocoTask::new("mujoco/walker-walk").unwrap();
        let mut obs = vec![0.0; t.spec().obs_size];
        t.reset(0, &mut obs).unwrap();
        let (nq, nv) = t.state_size();
        let (mut q, mut v) = (vec![0.0; nq], vec![0.0; nv]);
        t.state(&mut q, &mut v);
        let mut obs2 = vec![0.0; obs.len()];
        t.set_state(&q, &v, &mut obs2).unwrap();
        assert_eq!(obs, obs2);
        assert!(matches!(
            t.set_state(&q[1..], &v, &mut obs2),
            Err(TaskError::BufferSize { what: "qpos", .. })
        ));
    }
}
