//! Shared physics for the native tasks: MuJoCo's two integrators for
//! small fixed-size joint-space systems, geom inertias as MuJoCo computes
//! them, and the per-episode step clock.
//!
//! Everything works on `[f64; N]` arrays on the stack: no allocation, cost
//! a few dozen flops per call.

use crate::error::TaskError;

/// Standard gravity used by every suite model (MuJoCo's default `0 0 -9.81`).
pub const GRAVITY: f64 = 9.81;

/// MuJoCo's `Euler` integrator with implicit joint damping ("eulerdamp",
/// on by default): solve `(M + h D) a = f` where `f` already holds the
/// damping force `-D v`, then semi-implicit Euler `v += h a; q += h v`.
/// Cost: one N x N solve.
pub fn euler_damp<const N: usize>(
    q: &mut [f64; N],
    v: &mut [f64; N],
    h: f64,
    mut mass: [[f64; N]; N],
    damping: &[f64; N],
    force: &[f64; N],
) {
    for i in 0..N {
        mass[i][i] += h * damping[i];
    }
    let a = solve_spd(mass, *force);
    for i in 0..N {
        v[i] += h * a[i];
        q[i] += h * v[i];
    }
}

/// MuJoCo's `RK4` integrator: the classical 4-stage Runge-Kutta on
/// `(q, v)` with the control held over the step. `acc(q, v)` returns the
/// joint accelerations (all forces, damping and constraints included).
/// Cost: four calls to `acc`.
pub fn rk4<const N: usize>(
    q: &mut [f64; N],
    v: &mut [f64; N],
    h: f64,
    mut acc: impl FnMut(&[f64; N], &[f64; N]) -> [f64; N],
) {
    let (q0, v0) = (*q, *v);
    let a1 = acc(&q0, &v0);
    let k1 = v0;
    let stage = |c: f64, dq: &[f64; N], dv: &[f64; N]| {
        let mut qs = q0;
        let mut vs = v0;
        for i in 0..N {
            qs[i] += c * h * dq[i];
            vs[i] += c * h * dv[i];
        }
        (qs, vs)
    };
    let (q2, v2) = stage(0.5, &k1, &a1);
    let a2 = acc(&q2, &v2);
    let (q3, v3) = stage(0.5, &v2, &a2);
    let a3 = acc(&q3, &v3);
    let (q4, v4) = stage(1.0, &v3, &a3);
    let a4 = acc(&q4, &v4);
    for i in 0..N {
        q[i] = q0[i] + h / 6.0 * (k1[i] + 2.0 * v2[i] + 2.0 * v3[i] + v4[i]);
        v[i] = v0[i] + h / 6.0 * (a1[i] + 2.0 * a2[i] + 2.0 * a3[i] + a4[i]);
    }
}

/// Solve `a x = b` for a small symmetric positive-definite `a` (Gaussian
/// elimination without pivoting; fine for mass matrices).
pub fn solve_spd<const N: usize>(mut a: [[f64; N]; N], mut b: [f64; N]) -> [f64; N] {
    for k in 0..N {
        let pivot_row = a[k];
        for i in (k + 1)..N {
            let f = a[i][k] / pivot_row[k];
            for (aij, akj) in a[i][k..].iter_mut().zip(&pivot_row[k..]) {
                *aij -= f * akj;
            }
            b[i] -= f * b[k];
        }
    }
    let mut x = [0.0; N];
    for i in (0..N).rev() {
        let mut s = b[i];
        for j in (i + 1)..N {
            s -= a[i][j] * x[j];
        }
        x[i] = s / a[i][i];
    }
    x
}

/// Moment of inertia of a solid capsule of `mass`, `radius` and cylinder
/// length `length` about an axis through its centre, perpendicular to its
/// own axis: MuJoCo's formula (uniform density over the cylinder and the two
/// hemispherical caps; each cap's centroid sits `3r/8` beyond the cylinder's
/// end).
pub fn capsule_inertia_perp(mass: f64, radius: f64, length: f64) -> f64 {
    let r = radius;
    let h = length;
    let v_cyl = std::f64::consts::PI * r * r * h;
    let v_sph = 4.0 / 3.0 * std::f64::consts::PI * r * r * r;
    let density = mass / (v_cyl + v_sph);
    let m_cyl = density * v_cyl;
    let m_sph = density * v_sph;
    m_cyl * (h * h / 12.0 + r * r / 4.0)
        + m_sph * (2.0 * r * r / 5.0 + h * h / 4.0 + 3.0 * h * r / 8.0)
}

/// Moment of inertia of a solid sphere about its centre.
pub fn sphere_inertia(mass: f64, radius: f64) -> f64 {
    0.4 * mass * radius * radius
}

/// Scale a normalized action to an actuator force: clamp to the suite's
/// `ctrlrange` [-1, 1] (MuJoCo's `ctrllimited` clamping), times `gear`.
pub fn actuator_force(action: f64, gear: f64) -> f64 {
    gear * action.clamp(-1.0, 1.0)
}

/// Step counter of one episode: tells `step` whether it may run and when
/// the episode is over.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    steps: usize,
    started: bool,
}

impl Clock {
    /// Start a new episode.
    pub fn reset(&mut self) {
        self.steps = 0;
        self.started = true;
    }

    /// Check that another step is allowed.
    pub fn check(&self, episode_len: usize) -> Result<(), TaskError> {
        if !self.started {
            return Err(TaskError::NotReset);
        }
        if self.steps >= episode_len {
            return Err(TaskError::EpisodeOver);
        }
        Ok(())
    }

    /// Count a step; true when it was the last of the episode.
    pub fn tick(&mut self, episode_len: usize) -> bool {
        self.steps += 1;
        self.steps >= episode_len
    }

    /// Steps taken in this episode.
    pub fn steps(&self) -> usize {
        self.steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_spd_matches_known_solution() {
        let a = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]];
        let x_true = [1.0, -2.0, 0.5];
        let mut b = [0.0; 3];
        for i in 0..3 {
            for j in 0..3 {
                b[i] += a[i][j] * x_true[j];
            }
        }
        let x = solve_spd(a, b);
        for i in 0..3 {
            assert!((x[i] - x_true[i]).abs() < 1e-12);
        }
    }

    #[test]
    fn rk4_is_fourth_order_on_harmonic_oscillator() {
        // q'' = -q, q(0) = 1: q(t) = cos t. Error ratio for h vs h/2 ~ 16.
        let err = |h: f64| {
            let (mut q, mut v) = ([1.0], [0.0]);
            let n = (1.0 / h).round() as usize;
            for _ in 0..n {
                rk4(&mut q, &mut v, h, |q, _| [-q[0]]);
            }
            (q[0] - 1f64.cos()).abs()
        };
        let ratio = err(0.1) / err(0.05);
        assert!((12.0..20.0).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn capsule_inertia_limits() {
        // Thin rod limit: m h^2 / 12.
        let i = capsule_inertia_perp(1.0, 1e-6, 1.0);
        assert!((i - 1.0 / 12.0).abs() < 1e-6, "{i}");
        // Zero length: a sphere.
        let s = capsule_inertia_perp(2.0, 0.3, 0.0);
        assert!((s - sphere_inertia(2.0, 0.3)).abs() < 1e-12, "{s}");
    }

    #[test]
    fn clock_counts_and_refuses() {
        let mut c = Clock::default();
        assert_eq!(c.check(2), Err(TaskError::NotReset));
        c.reset();
        assert!(c.check(2).is_ok());
        assert!(!c.tick(2));
        assert!(c.tick(2));
        assert_eq!(c.check(2), Err(TaskError::EpisodeOver));
    }
}
