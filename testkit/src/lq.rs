//! A latent model written directly in Rust with a known optimum, for tests
//! and benchmarks of the planners without a bundle:
//!
//! ```text
//! z' = A z + B a
//! r(z, a) = -(z' diag(w_z) z + a' diag(w_a) a)
//! Q_i(z, a) = -(z' P z) + s d_i bump(z),   d_i = +1, -1, +1, ... (mean 0)
//! bump(z) = exp(-|z - c|^2 / (2 sigma^2))          (the disagreement region)
//! pi(z) = (mu, log_std) = (K z + k, log_std)
//! ```
//!
//! With an even number of heads the ensemble mean is exactly -(z' P z) and
//! the spread is exactly s bump(z), so the uncertainty term is known.

// Index loops read like the equations in this numerical code.
#![allow(clippy::needless_range_loop)]
use dream_mpc::planner::{LatentModel, ModelDims, Module};
use nalgebra::{DMatrix, DVector};

/// Where the Q heads disagree.
#[derive(Clone, Debug, PartialEq)]
pub struct Disagreement {
    /// Centre c of the region (latent size).
    pub center: Vec<f32>,
    /// Width sigma.
    pub width: f32,
    /// Spread s at the centre.
    pub scale: f32,
}

/// The linear-quadratic model above; fields are public so tests can build
/// any instance. Matrices are row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearQuadratic {
    /// Latent size n.
    pub n: usize,
    /// Action size m.
    pub m: usize,
    /// Q heads.
    pub heads: usize,
    /// A: `[n, n]`.
    pub a: Vec<f32>,
    /// B: `[n, m]`.
    pub b: Vec<f32>,
    /// diag(w_z): `[n]`.
    pub w_z: Vec<f32>,
    /// diag(w_a): `[m]`.
    pub w_a: Vec<f32>,
    /// P: `[n, n]` (terminal value weight).
    pub p: Vec<f32>,
    /// K: `[m, n]` (policy gain, pre-tanh).
    pub k: Vec<f32>,
    /// k: `[m]` (policy bias, pre-tanh).
    pub bias: Vec<f32>,
    /// Policy log std: `[m]`.
    pub log_std: Vec<f32>,
    pub disagreement: Option<Disagreement>,
}

/// Inputs recorded per slot for the VJPs.
pub struct LqTape {
    batch: usize,
    reward_z: Vec<f32>,
    reward_a: Vec<f32>,
    q_z: Vec<f32>,
}

impl LinearQuadratic {
    /// `z' = z + dt a` on n = m dims (a point moving with velocity a),
    /// reward weights `w_z`, `w_a`, P = `p_scale` I, zero policy.
    pub fn point_mass(n: usize, heads: usize, dt: f32, w_z: f32, w_a: f32, p_scale: f32) -> Self {
        let eye = |s: f32| {
            let mut e = vec![0.0; n * n];
            (0..n).for_each(|i| e[i * n + i] = s);
            e
        };
        LinearQuadratic {
            n,
            m: n,
            heads,
            a: eye(1.0),
            b: eye(dt),
            w_z: vec![w_z; n],
            w_a: vec![w_a; n],
            p: eye(p_scale),
            k: vec![0.0; n * n],
            bias: vec![0.0; n],
            log_std: vec![-1.0; n],
            disagreement: None,
        }
    }

    /// The true next state (the model is its own ground truth in tests).
    pub fn step(&self, z: &[f32], a: &[f32], z_next: &mut [f32]) {
        for (i, zn) in z_next.iter_mut().enumerate() {
            *zn = dot(&self.a[i * self.n..(i + 1) * self.n], z)
                + dot(&self.b[i * self.m..(i + 1) * self.m], a);
        }
    }

    /// The true reward r(z, a).
    pub fn reward_of(&self, z: &[f32], a: &[f32]) -> f32 {
        -(quad_diag(&self.w_z, z) + quad_diag(&self.w_a, a))
    }

    /// bump(z) (0 without a disagreement region).
    pub fn bump(&self, z: &[f32]) -> f32 {
        match &self.disagreement {
            None => 0.0,
            Some(d) => {
                let r2: f32 = z
                    .iter()
                    .zip(&d.center)
                    .map(|(x, c)| (x - c) * (x - c))
                    .sum();
                (-r2 / (2.0 * d.width * d.width)).exp()
            }
        }
    }

    /// The unconstrained minimizer of sum_t g^t (z'Wz z + a'Wa a) + g^H z_H'P z_H
    /// over the stacked actions (the negated J of the native model), solved
    /// directly as a least-squares problem in f64. Returns the H stacked
    /// actions (`[h, m]`). Reference for planner tests.
    pub fn analytic_optimum(&self, z0: &[f32], h: usize, g: f64) -> Vec<f64> {
        let m = self;
        let (n, k) = (m.n, m.m);
        let a = DMatrix::from_row_slice(n, n, &m.a.iter().map(|&x| x as f64).collect::<Vec<_>>());
        let b = DMatrix::from_row_slice(n, k, &m.b.iter().map(|&x| x as f64).collect::<Vec<_>>());
        let p = DMatrix::from_row_slice(n, n, &m.p.iter().map(|&x| x as f64).collect::<Vec<_>>());
        let wz =
            DMatrix::from_diagonal(&DVector::from_iterator(n, m.w_z.iter().map(|&x| x as f64)));
        let wa =
            DMatrix::from_diagonal(&DVector::from_iterator(k, m.w_a.iter().map(|&x| x as f64)));
        let z0 = DVector::from_iterator(n, z0.iter().map(|&x| x as f64));
        let mut hess = DMatrix::<f64>::zeros(h * k, h * k);
        let mut lin = DVector::<f64>::zeros(h * k);
        // z_t = phi z0 + gamma u, built step by step.
        let mut phi = DMatrix::<f64>::identity(n, n);
        let mut gamma = DMatrix::<f64>::zeros(n, h * k);
        for t in 0..=h {
            let gt = g.powi(t as i32);
            let w = if t < h { &wz } else { &p };
            hess += gt * gamma.transpose() * w * &gamma;
            lin += gt * gamma.transpose() * w * &phi * &z0;
            if t < h {
                let mut block = hess.view_mut((t * k, t * k), (k, k));
                block += gt * &wa;
                let next_gamma = {
                    let mut ng = &a * &gamma;
                    let mut block = ng.view_mut((0, t * k), (n, k));
                    block += &b;
                    ng
                };
                gamma = next_gamma;
                phi = &a * &phi;
            }
        }
        let u = hess.lu().solve(&(-lin)).expect("positive definite");
        u.iter().copied().collect()
    }

    fn head_sign(i: usize) -> f32 {
        if i.is_multiple_of(2) {
            1.0
        } else {
            -1.0
        }
    }
}

fn dot(x: &[f32], y: &[f32]) -> f32 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

fn quad_diag(w: &[f32], x: &[f32]) -> f32 {
    w.iter().zip(x).map(|(w, x)| w * x * x).sum()
}

impl LatentModel for LinearQuadratic {
    type Tape = LqTape;

    fn dims(&self) -> ModelDims {
        ModelDims {
            latent: self.n,
            action: self.m,
            q_heads: self.heads,
        }
    }

    fn tape(&self, batch: usize, slots: usize) -> LqTape {
        LqTape {
            batch,
            reward_z: vec![0.0; slots * batch * self.n],
            reward_a: vec![0.0; slots * batch * self.m],
            q_z: vec![0.0; slots * batch * self.n],
        }
    }

    fn next(&self, _: &mut LqTape, _: usize, z: &[f32], a: &[f32], z_next: &mut [f32]) {
        for ((z, a), zn) in z
            .chunks_exact(self.n)
            .zip(a.chunks_exact(self.m))
            .zip(z_next.chunks_exact_mut(self.n))
        {
            self.step(z, a, zn);
        }
    }

    fn next_vjp(&self, _: &mut LqTape, _: usize, dzn: &[f32], dz: &mut [f32], da: &mut [f32]) {
        let (n, m) = (self.n, self.m);
        for ((g, dz), da) in dzn
            .chunks_exact(n)
            .zip(dz.chunks_exact_mut(n))
            .zip(da.chunks_exact_mut(m))
        {
            for j in 0..n {
                dz[j] = (0..n).map(|i| self.a[i * n + j] * g[i]).sum();
            }
            for k in 0..m {
                da[k] = (0..n).map(|i| self.b[i * m + k] * g[i]).sum();
            }
        }
    }

    fn reward(&self, tape: &mut LqTape, slot: usize, z: &[f32], a: &[f32], r: &mut [f32]) {
        let (n, m) = (self.n, self.m);
        let zo = slot * tape.batch * n;
        let ao = slot * tape.batch * m;
        tape.reward_z[zo..zo + z.len()].copy_from_slice(z);
        tape.reward_a[ao..ao + a.len()].copy_from_slice(a);
        for ((z, a), r) in z.chunks_exact(n).zip(a.chunks_exact(m)).zip(r.iter_mut()) {
            *r = self.reward_of(z, a);
        }
    }

    fn reward_vjp(
        &self,
        tape: &mut LqTape,
        slot: usize,
        dr: &[f32],
        dz: &mut [f32],
        da: &mut [f32],
    ) {
        let (n, m) = (self.n, self.m);
        let zs = &tape.reward_z[slot * tape.batch * n..];
        let as_ = &tape.reward_a[slot * tape.batch * m..];
        for (row, &g) in dr.iter().enumerate() {
            for j in 0..n {
                dz[row * n + j] = -2.0 * g * self.w_z[j] * zs[row * n + j];
            }
            for k in 0..m {
                da[row * m + k] = -2.0 * g * self.w_a[k] * as_[row * m + k];
            }
        }
    }

    fn q(&self, tape: &mut LqTape, slot: usize, z: &[f32], _a: &[f32], q: &mut [f32]) {
        let n = self.n;
        let zo = slot * tape.batch * n;
        tape.q_z[zo..zo + z.len()].copy_from_slice(z);
        let s = self.disagreement.as_ref().map_or(0.0, |d| d.scale);
        for (z, q) in z.chunks_exact(n).zip(q.chunks_exact_mut(self.heads)) {
            let value: f32 = -(0..n)
                .map(|i| z[i] * dot(&self.p[i * n..(i + 1) * n], z))
                .sum::<f32>();
            let bump = self.bump(z);
            for (i, qi) in q.iter_mut().enumerate() {
                *qi = value + s * Self::head_sign(i) * bump;
            }
        }
    }

    fn q_vjp(&self, tape: &mut LqTape, slot: usize, dq: &[f32], dz: &mut [f32], da: &mut [f32]) {
        let n = self.n;
        let zs = &tape.q_z[slot * tape.batch * n..];
        da.iter_mut().for_each(|x| *x = 0.0);
        for (row, (g, dz)) in dq
            .chunks_exact(self.heads)
            .zip(dz.chunks_exact_mut(n))
            .enumerate()
        {
            let z = &zs[row * n..(row + 1) * n];
            let sum_g: f32 = g.iter().sum();
            let signed_g: f32 = g
                .iter()
                .enumerate()
                .map(|(i, g)| Self::head_sign(i) * g)
                .sum();
            let bump = self.bump(z);
            for j in 0..n {
                // d(-z'Pz)/dz_j = -sum_i (P_ij + P_ji) z_i
                let dv: f32 = -(0..n)
                    .map(|i| (self.p[i * n + j] + self.p[j * n + i]) * z[i])
                    .sum::<f32>();
                let db = match &self.disagreement {
                    None => 0.0,
                    Some(d) => d.scale * bump * -(z[j] - d.center[j]) / (d.width * d.width),
                };
                dz[j] = sum_g * dv + signed_g * db;
            }
        }
    }

    fn pi(&self, _: &mut LqTape, _: usize, z: &[f32], mu: &mut [f32], log_std: &mut [f32]) {
        let (n, m) = (self.n, self.m);
        for ((z, mu), ls) in z
            .chunks_exact(n)
            .zip(mu.chunks_exact_mut(m))
            .zip(log_std.chunks_exact_mut(m))
        {
            for k in 0..m {
                mu[k] = dot(&self.k[k * n..(k + 1) * n], z) + self.bias[k];
            }
            ls.copy_from_slice(&self.log_std);
        }
    }

    fn pi_vjp(&self, _: &mut LqTape, _: usize, dmu: &[f32], dz: &mut [f32]) {
        let (n, m) = (self.n, self.m);
        for (g, dz) in dmu.chunks_exact(m).zip(dz.chunks_exact_mut(n)) {
            for j in 0..n {
                dz[j] = (0..m).map(|k| self.k[k * n + j] * g[k]).sum();
            }
        }
    }

    fn flops(&self, module: Module, rows: usize) -> (u64, u64) {
        let (n, m, r) = (self.n as u64, self.m as u64, rows as u64);
        let f = match module {
            Module::Dynamics => n * (n + m),
            Module::Reward => n + m,
            Module::Q => n * n,
            Module::Policy => m * n,
        };
        (r * f, r * f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finite-difference check of every VJP of the native model.
    #[test]
    fn vjps_match_finite_differences() {
        let mut m = LinearQuadratic::point_mass(2, 4, 0.3, 1.0, 0.2, 2.0);
        m.a = vec![1.0, 0.1, -0.2, 0.9];
        m.p = vec![2.0, 0.5, 0.1, 1.0];
        m.k = vec![0.3, -0.7, 0.2, 0.4];
        m.disagreement = Some(Disagreement {
            center: vec![0.2, -0.1],
            width: 0.5,
            scale: 1.5,
        });
        let mut tape = m.tape(1, 1);
        let z = [0.4f32, -0.3];
        let a = [0.5f32, -0.6];
        let cot_q = [0.3f32, -1.0, 0.7, 0.2];
        let f = |z: &[f32], a: &[f32], tape: &mut LqTape| {
            let (mut zn, mut r, mut q, mut mu, mut ls) =
                ([0.0; 2], [0.0], [0.0; 4], [0.0; 2], [0.0; 2]);
            m.next(tape, 0, z, a, &mut zn);
            m.reward(tape, 0, z, a, &mut r);
            m.q(tape, 0, z, a, &mut q);
            m.pi(tape, 0, z, &mut mu, &mut ls);
            // A scalar mixing every output with fixed cotangents.
            0.7 * zn[0] - 1.3 * zn[1] + 0.9 * r[0] + dot(&cot_q, &q) + 0.4 * mu[0] - 0.8 * mu[1]
        };
        f(&z, &a, &mut tape);
        let (mut dz, mut da, mut s_dz, mut s_da) = ([0.0; 2], [0.0; 2], [0.0f32; 2], [0.0f32; 2]);
        m.next_vjp(&mut tape, 0, &[0.7, -1.3], &mut dz, &mut da);
        add2(&mut s_dz, &dz);
        add2(&mut s_da, &da);
        m.reward_vjp(&mut tape, 0, &[0.9], &mut dz, &mut da);
        add2(&mut s_dz, &dz);
        add2(&mut s_da, &da);
        m.q_vjp(&mut tape, 0, &cot_q, &mut dz, &mut da);
        add2(&mut s_dz, &dz);
        add2(&mut s_da, &da);
        m.pi_vjp(&mut tape, 0, &[0.4, -0.8], &mut dz);
        add2(&mut s_dz, &dz);
        let h = 1e-3;
        for j in 0..2 {
            let (mut zp, mut zm) = (z, z);
            zp[j] += h;
            zm[j] -= h;
            let fd = (f(&zp, &a, &mut tape) - f(&zm, &a, &mut tape)) / (2.0 * h);
            assert!((fd - s_dz[j]).abs() < 2e-2, "dz[{j}] {fd} vs {}", s_dz[j]);
            let (mut ap, mut am) = (a, a);
            ap[j] += h;
            am[j] -= h;
            let fd = (f(&z, &ap, &mut tape) - f(&z, &am, &mut tape)) / (2.0 * h);
            assert!((fd - s_da[j]).abs() < 2e-2, "da[{j}] {fd} vs {}", s_da[j]);
        }
    }

    fn add2(acc: &mut [f32; 2], x: &[f32; 2]) {
        acc[0] += x[0];
        acc[1] += x[1];
    }

    #[test]
    fn ensemble_mean_is_the_value_and_spread_is_the_bump() {
        let mut m = LinearQuadratic::point_mass(2, 4, 0.3, 1.0, 0.2, 2.0);
        m.disagreement = Some(Disagreement {
            center: vec![0.0, 0.0],
            width: 1.0,
            scale: 3.0,
        });
        let mut tape = m.tape(1, 1);
        let mut q = [0.0; 4];
        m.q(&mut tape, 0, &[0.5, 0.5], &[0.0, 0.0], &mut q);
        let bump = (-0.25f32).exp();
        assert!(
            (dream_mpc::planner::objective::mean(&q) + 1.0).abs() < 1e-5,
            "{q:?}"
        );
        assert!(
            (dream_mpc::planner::objective::spread(&q) - 3.0 * bump).abs() < 1e-5,
            "{q:?}"
        );
    }
}
