//! Behaviour of the planners on the native linear-quadratic model, whose
//! optimum is known: optimality, monotonicity of J, the three ingredients
//! of Dream-MPC (policy init, uncertainty regularization, reuse), deadline,
//! non-finite handling, determinism and evaluation accounting.

use dream_mpc::bundle::manifest::PlannerDefaults;
use dream_mpc::planner::{
    LatentModel, ModelDims, Module, PlanStatus, Planner, PlannerConfig, PlannerKind,
};
use dream_mpc_testkit::lq::{Disagreement, LinearQuadratic};
use std::time::{Duration, Instant};

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

fn config(kind: PlannerKind) -> PlannerConfig {
    let d = PlannerDefaults {
        candidates: 8,
        horizon: 3,
        iterations: 5,
        step_size: 0.1,
        beta: 1.0,
        options: dream_mpc::planner::DreamOptions::sketch(),
    };
    PlannerConfig::for_kind(kind, &d, 0.9)
}

/// A 2-D system with coupled dynamics and a symmetric terminal weight.
fn lq() -> LinearQuadratic {
    let mut m = LinearQuadratic::point_mass(2, 4, 0.5, 1.0, 0.3, 2.0);
    m.a = vec![1.0, 0.2, -0.1, 0.95];
    m.b = vec![0.5, 0.1, 0.0, 0.4];
    m.p = vec![2.0, 0.3, 0.3, 1.5];
    m
}

/// J of a sequence on the true system, computed independently of the
/// planner (mirrors the objective's equation).
fn true_j(m: &LinearQuadratic, z0: &[f32], seq: &[f32], g: f32, beta: f32) -> f32 {
    let (n, k) = (m.n, m.m);
    let h = seq.len() / k;
    let mut z = z0.to_vec();
    let mut zn = vec![0.0; n];
    let mut j = 0.0;
    for t in 0..h {
        let a = &seq[t * k..(t + 1) * k];
        let u = m.disagreement.as_ref().map_or(0.0, |d| d.scale) * m.bump(&z);
        j += g.powi(t as i32) * (m.reward_of(&z, a) - beta * u);
        m.step(&z, a, &mut zn);
        z.copy_from_slice(&zn);
    }
    let mut pz = 0.0;
    for i in 0..n {
        for c in 0..n {
            pz += z[i] * m.p[i * n + c] * z[c];
        }
    }
    j - g.powi(h as i32) * pz
}

#[test]
fn grad_mpc_reaches_the_analytic_lq_optimum() {
    let m = lq();
    let mut c = config(PlannerKind::GradMpc);
    c.horizon = 4;
    c.iterations = 600;
    c.step_size = 0.01;
    c.candidates = 2;
    let z0 = [0.6f32, -0.4];
    let u = m.analytic_optimum(&z0, 4, 0.9);
    assert!(
        u.iter().all(|x| x.abs() < 0.9),
        "optimum inside bounds: {u:?}"
    );
    let mut p = Planner::new(&m, c).unwrap();
    let r = p.plan(&m, &z0, far()).unwrap();
    assert_eq!(r.status, PlanStatus::Finished);
    assert_eq!(r.iterations, 600);
    let a = r.action.as_slice();
    for i in 0..2 {
        assert!(
            (a[i] as f64 - u[i]).abs() < 1e-2,
            "first action {a:?} vs analytic {:?}",
            &u[..2]
        );
    }
    // The predicted J is the true J of the returned sequence.
    let seq = p.plan_sequence().to_vec();
    let j = true_j(&m, &z0, &seq, 0.9, 0.0);
    let r = p.plan(&m, &z0, far()).unwrap();
    assert!((r.j.unwrap() - j).abs() < 1e-4 * j.abs().max(1.0));
}

#[test]
fn cem_and_mppi_get_close_with_enough_samples() {
    let m = lq();
    let z0 = [0.6f32, -0.4];
    let u = m.analytic_optimum(&z0, 3, 0.9);
    for kind in [PlannerKind::Cem, PlannerKind::Mppi] {
        let mut c = config(kind);
        c.cem_samples = 1000;
        c.cem_elites = 50;
        c.cem_iterations = 10;
        c.cem_init_std = 0.5;
        c.reuse = false;
        let mut p = Planner::new(&m, c).unwrap();
        let r = p.plan(&m, &z0, far()).unwrap();
        assert_eq!(r.status, PlanStatus::Finished);
        let a = r.action.as_slice();
        for i in 0..2 {
            assert!(
                (a[i] as f64 - u[i]).abs() < 0.05,
                "{kind:?}: {a:?} vs analytic {:?}",
                &u[..2]
            );
        }
    }
}

#[test]
fn dream_mpc_j_never_ends_below_the_best_initial_candidate() {
    let mut m = lq();
    m.k = vec![-0.5, 0.2, 0.1, -0.8];
    m.bias = vec![0.3, -0.5];
    m.log_std = vec![-0.5, -0.5];
    m.disagreement = Some(Disagreement {
        center: vec![0.2, 0.1],
        width: 0.3,
        scale: 0.5,
    });
    // A large step size makes Adam overshoot: the returned J must still
    // be at least that of every initial candidate, e.g. the policy mean.
    for step in [0.01f32, 0.3, 1.0] {
        let mut c = config(PlannerKind::DreamMpc);
        c.step_size = step;
        let mut p = Planner::new(&m, c).unwrap();
        for s in 0..20 {
            let z0 = [(s as f32 * 0.37).sin(), (s as f32 * 0.91).cos()];
            let r = p.plan(&m, &z0, far()).unwrap();
            let j = r.j.unwrap();
            let trace = p.trace().to_vec();
            assert_eq!(trace.len(), 6);
            assert!(trace.windows(2).all(|w| w[1] >= w[0]), "{trace:?}");
            // The policy-mean rollout, computed here on the true model.
            let mut z = z0.to_vec();
            let mut seq = vec![0.0; 6];
            let mut zn = [0.0; 2];
            for t in 0..3 {
                for k in 0..2 {
                    let mu = m.k[k * 2] * z[0] + m.k[k * 2 + 1] * z[1] + m.bias[k];
                    seq[t * 2 + k] = mu.tanh();
                }
                m.step(&z, &seq[t * 2..t * 2 + 2], &mut zn);
                z.copy_from_slice(&zn);
            }
            // V(z_H) uses the policy action, not the sequence: the native
            // Q does not depend on a, so true_j's terminal term matches.
            let j_policy = true_j(&m, &z0, &seq, 0.9, 1.0);
            assert!(
                j >= j_policy - 1e-5,
                "step {step} tick {s}: {j} < policy {j_policy}"
            );
            assert!(j >= trace[0]);
            let j_seq = true_j(&m, &z0, p.plan_sequence(), 0.9, 1.0);
            assert!(
                (j - j_seq).abs() < 1e-4,
                "reported J {j} vs recomputed {j_seq}"
            );
        }
    }
}

/// Closed loop on the true system for `ticks` steps; returns the return.
fn closed_loop(m: &LinearQuadratic, p: &mut Planner<LinearQuadratic>, ticks: usize) -> f32 {
    let mut z = vec![0.8f32, -0.6];
    let mut zn = vec![0.0; 2];
    let mut ret = 0.0;
    for _ in 0..ticks {
        let r = p.plan(m, &z, far()).unwrap();
        let a = r.action.as_slice().to_vec();
        ret += m.reward_of(&z, &a);
        m.step(&z, &a, &mut zn);
        z.copy_from_slice(&zn);
    }
    ret
}

fn biased_policy_model() -> LinearQuadratic {
    let mut m = lq();
    // A stabilizing gain with a constant bias pushing the state off target.
    m.k = vec![-1.0, 0.0, 0.0, -1.0];
    m.bias = vec![0.7, -0.7];
    m.log_std = vec![-1.0, -1.0];
    m
}

#[test]
fn dream_mpc_improves_on_a_biased_policy() {
    let m = biased_policy_model();
    let mut policy = Planner::new(&m, config(PlannerKind::Policy)).unwrap();
    let mut dream = Planner::new(&m, config(PlannerKind::DreamMpc)).unwrap();
    let ret_policy = closed_loop(&m, &mut policy, 30);
    let ret_dream = closed_loop(&m, &mut dream, 30);
    eprintln!("closed-loop return: policy {ret_policy}, dream-mpc {ret_dream}");
    assert!(
        ret_dream > 0.5 * ret_policy,
        "dream {ret_dream} should lose less than half of policy {ret_policy}"
    );
}

#[test]
fn reuse_reduces_the_iterations_needed_across_ticks() {
    let m = biased_policy_model();
    let mut with = config(PlannerKind::DreamMpc);
    with.uncertainty = false;
    with.iterations = 2;
    let mut without = with.clone();
    without.reuse = false;
    without.iterations = 40;
    let mut reuse = Planner::new(&m, with).unwrap();
    let mut fresh = Planner::new(&m, without).unwrap();
    let mut z = vec![0.8f32, -0.6];
    let mut zn = vec![0.0; 2];
    let mut needed = Vec::new();
    for tick in 0..12 {
        let r = reuse.plan(&m, &z, far()).unwrap();
        let (j_reuse, a) = (r.j.unwrap(), r.action.as_slice().to_vec());
        fresh.plan(&m, &z, far()).unwrap();
        // Iterations the planner without reuse needs to reach the J that
        // the reusing planner reached with 2 (41 = never within 40).
        let k = fresh
            .trace()
            .iter()
            .position(|&j| j >= j_reuse - 1e-6)
            .unwrap_or(41);
        if tick >= 2 {
            needed.push(k);
        }
        m.step(&z, &a, &mut zn);
        z.copy_from_slice(&zn);
    }
    let mean = needed.iter().sum::<usize>() as f32 / needed.len() as f32;
    assert!(
        mean >= 3.0,
        "without reuse the planner needs {needed:?} iterations (mean {mean}); with reuse 2"
    );
}

#[test]
fn uncertainty_regularization_avoids_the_disagreement_region() {
    let mut m = LinearQuadratic::point_mass(2, 4, 0.25, 1.0, 0.05, 1.0);
    m.k = vec![-2.0, 0.0, 0.0, -2.0];
    m.log_std = vec![-1.0, -1.0];
    m.disagreement = Some(Disagreement {
        center: vec![0.5, 0.05],
        width: 0.15,
        scale: 1.0,
    });
    let z0 = [1.0f32, 0.0];
    let exposure = |reg: bool| {
        let mut c = config(PlannerKind::DreamMpc);
        c.horizon = 6;
        c.iterations = 60;
        c.step_size = 0.05;
        c.uncertainty = reg;
        c.beta = 2.0;
        c.reuse = false;
        let mut p = Planner::new(&m, c).unwrap();
        p.plan(&m, &z0, far()).unwrap();
        let seq = p.plan_sequence().to_vec();
        let (mut z, mut zn, mut total) = (z0.to_vec(), vec![0.0; 2], 0.0);
        for t in 0..6 {
            m.step(&z, &seq[t * 2..t * 2 + 2], &mut zn);
            z.copy_from_slice(&zn);
            total += m.bump(&z);
        }
        total
    };
    let (plain, regularized) = (exposure(false), exposure(true));
    eprintln!("exposure to the disagreement region: plain {plain}, regularized {regularized}");
    assert!(
        plain > 0.5,
        "the unregularized plan crosses the region: {plain}"
    );
    assert!(
        regularized < 0.3 * plain,
        "regularized exposure {regularized} vs unregularized {plain}"
    );
}

#[test]
fn a_deadline_shorter_than_one_iteration_returns_the_policy_action_in_time() {
    let m = biased_policy_model();
    let z0 = [0.3f32, 0.2];
    let policy: Vec<f32> = (0..2)
        .map(|k| (m.k[k * 2] * z0[0] + m.k[k * 2 + 1] * z0[1] + m.bias[k]).tanh())
        .collect();
    for kind in PlannerKind::ALL {
        let mut p = Planner::new(&m, config(kind)).unwrap();
        p.plan(&m, &z0, far()).unwrap(); // warm-up: learns how long a step takes
        let t0 = Instant::now();
        let r = p.plan(&m, &z0, t0 + Duration::from_nanos(1)).unwrap();
        let took = t0.elapsed();
        assert_eq!(r.action.as_slice(), &policy[..], "{kind:?}");
        assert!(took < Duration::from_millis(5), "{kind:?} took {took:?}");
        if kind != PlannerKind::Policy {
            assert_eq!(r.status, PlanStatus::Deadline, "{kind:?}");
            assert_eq!(r.iterations, 0);
            assert_eq!(r.j, None);
        }
    }
}

#[test]
fn a_deadline_mid_budget_stops_with_the_best_so_far() {
    let m = biased_policy_model();
    let mut c = config(PlannerKind::DreamMpc);
    c.iterations = 10_000_000;
    c.candidates = 64;
    c.horizon = 8;
    let mut p = Planner::new(&m, c).unwrap();
    let t0 = Instant::now();
    let budget = Duration::from_millis(20);
    let r = p.plan(&m, &[0.5, 0.5], t0 + budget).unwrap();
    let took = t0.elapsed();
    let (status, iterations, j) = (r.status, r.iterations, r.j.unwrap());
    assert_eq!(status, PlanStatus::Deadline);
    assert!(iterations > 0 && iterations < 10_000_000);
    assert!(took < budget + Duration::from_millis(10), "took {took:?}");
    assert_eq!(p.trace().len(), iterations + 1);
    assert!(j >= p.trace()[0]);
}

/// Delegates to the native model but poisons the reward of chosen rows
/// (or of all rows), to check the non-finite handling.
struct Poisoned {
    inner: LinearQuadratic,
    rows: std::ops::Range<usize>,
}

impl LatentModel for Poisoned {
    type Tape = <LinearQuadratic as LatentModel>::Tape;
    fn dims(&self) -> ModelDims {
        self.inner.dims()
    }
    fn tape(&self, batch: usize, slots: usize) -> Self::Tape {
        self.inner.tape(batch, slots)
    }
    fn next(&self, tp: &mut Self::Tape, s: usize, z: &[f32], a: &[f32], zn: &mut [f32]) {
        self.inner.next(tp, s, z, a, zn)
    }
    fn next_vjp(&self, tp: &mut Self::Tape, s: usize, g: &[f32], dz: &mut [f32], da: &mut [f32]) {
        self.inner.next_vjp(tp, s, g, dz, da)
    }
    fn reward(&self, tp: &mut Self::Tape, s: usize, z: &[f32], a: &[f32], r: &mut [f32]) {
        self.inner.reward(tp, s, z, a, r);
        for row in self.rows.clone() {
            if row < r.len() {
                r[row] = f32::NAN;
            }
        }
    }
    fn reward_vjp(&self, tp: &mut Self::Tape, s: usize, g: &[f32], dz: &mut [f32], da: &mut [f32]) {
        self.inner.reward_vjp(tp, s, g, dz, da)
    }
    fn q(&self, tp: &mut Self::Tape, s: usize, z: &[f32], a: &[f32], q: &mut [f32]) {
        self.inner.q(tp, s, z, a, q)
    }
    fn q_vjp(&self, tp: &mut Self::Tape, s: usize, g: &[f32], dz: &mut [f32], da: &mut [f32]) {
        self.inner.q_vjp(tp, s, g, dz, da)
    }
    fn pi(&self, tp: &mut Self::Tape, s: usize, z: &[f32], mu: &mut [f32], ls: &mut [f32]) {
        self.inner.pi(tp, s, z, mu, ls)
    }
    fn pi_vjp(&self, tp: &mut Self::Tape, s: usize, g: &[f32], dz: &mut [f32]) {
        self.inner.pi_vjp(tp, s, g, dz)
    }
}

#[test]
fn non_finite_candidates_are_discarded_and_all_non_finite_falls_back() {
    let inner = biased_policy_model();
    let z0 = [0.3f32, 0.2];
    let policy: Vec<f32> = (0..2)
        .map(|k| (inner.k[k * 2] * z0[0] + inner.k[k * 2 + 1] * z0[1] + inner.bias[k]).tanh())
        .collect();
    for kind in [
        PlannerKind::DreamMpc,
        PlannerKind::GradMpc,
        PlannerKind::Cem,
        PlannerKind::Mppi,
    ] {
        // Rows 1..4 poisoned: the others still plan.
        let some = Poisoned {
            inner: inner.clone(),
            rows: 1..4,
        };
        let mut c = config(kind);
        c.cem_samples = 32;
        c.cem_elites = 8;
        let mut p = Planner::new(&some, c.clone()).unwrap();
        let r = p.plan(&some, &z0, far()).unwrap();
        assert_eq!(r.status, PlanStatus::Finished, "{kind:?}");
        assert!(r.j.unwrap().is_finite());
        // Every row poisoned: policy action with a status that says so.
        let all = Poisoned {
            inner: inner.clone(),
            rows: 0..10_000,
        };
        let mut p = Planner::new(&all, c).unwrap();
        let r = p.plan(&all, &z0, far()).unwrap();
        assert_eq!(r.status, PlanStatus::AllNonFinite, "{kind:?}");
        assert_eq!(r.action.as_slice(), &policy[..]);
        assert_eq!(r.j, None);
    }
    // A non-finite latent poisons the policy too: the action is zero.
    let m = biased_policy_model();
    let mut p = Planner::new(&m, config(PlannerKind::DreamMpc)).unwrap();
    let r = p.plan(&m, &[f32::NAN, 0.0], far()).unwrap();
    assert_eq!(r.status, PlanStatus::AllNonFinite);
    assert_eq!(r.action.as_slice(), &[0.0, 0.0]);
    // A latent of the wrong size is an error naming both sizes.
    let e = p.plan(&m, &[0.0; 3], far()).unwrap_err();
    assert_eq!(e.to_string(), "z0 has 3 elements, the model's latent has 2");
}

#[test]
fn planners_are_deterministic_for_a_seed() {
    let m = biased_policy_model();
    for kind in PlannerKind::ALL {
        let run = |seed: u64| {
            let mut c = config(kind);
            c.cem_samples = 64;
            c.cem_elites = 8;
            c.seed = seed;
            let mut p = Planner::new(&m, c).unwrap();
            let mut out = Vec::new();
            for s in 0..5 {
                let r = p.plan(&m, &[0.1 * s as f32, -0.3], far()).unwrap();
                out.extend_from_slice(r.action.as_slice());
                out.extend_from_slice(p.trace());
            }
            out
        };
        assert_eq!(run(7), run(7), "{kind:?}");
        if kind != PlannerKind::Policy {
            assert_ne!(run(7), run(8), "{kind:?} ignores its seed");
        }
    }
}

#[test]
fn evaluations_are_counted_exactly() {
    let m = biased_policy_model();
    let (n, h, k) = (8u64, 3u64, 5u64);
    let mut c = config(PlannerKind::DreamMpc);
    let mut p = Planner::new(&m, c.clone()).unwrap();
    p.plan(&m, &[0.1, 0.2], far()).unwrap();
    let r = p.plan(&m, &[0.1, 0.2], far()).unwrap();
    let b = n + 1;
    // policy at z0; H policy calls to fill; K + 1 rollouts of H x (dynamics,
    // reward, Q) plus terminal policy and Q; K VJPs of the same.
    let per_rollout = b * (3 * h + 2);
    assert_eq!(r.evals.forward, 1 + h * b + (k + 1) * per_rollout);
    assert_eq!(r.evals.backward, k * per_rollout);
    // Unit flops of the native model: one multiply-add per count below.
    let f = |module, rows| m.flops(module, rows);
    assert_eq!(f(Module::Dynamics, 1), (8, 8));
    assert!(r.evals.flops > 0);
    // Without uncertainty the Q calls along the horizon are skipped.
    c.uncertainty = false;
    c.reuse = false;
    let mut p = Planner::new(&m, c).unwrap();
    let r = p.plan(&m, &[0.1, 0.2], far()).unwrap();
    let per_rollout = n * (2 * h + 2);
    assert_eq!(r.evals.forward, 1 + h * n + (k + 1) * per_rollout);
    assert_eq!(r.evals.backward, k * per_rollout);
}
