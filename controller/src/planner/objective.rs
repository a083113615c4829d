//! The planner objective, written as the equation:
//!
//! ```text
//! J(a_0..a_{H-1}) = sum_{t<H} g^t (r_t - beta * u_t) + g^H V(z_H)
//!     r_t = R(z_t, a_t),   z_{t+1} = d(z_t, a_t)
//!     u_t = spread_i Q_i(z_t, a_t)            (ensemble disagreement)
//!     V(z_H) = mean_i Q_i(z_H, tanh(mu(z_H)))  (value at the policy's action)
//! ```
//!
//! with beta = 0 when uncertainty is switched off. The spread is the
//! population standard deviation over the Q heads.
//!
//! The Dream-MPC authors' form ([`UncertaintyAt::NextState`]) measures u at the
//! next state and does not discount it:
//!
//! ```text
//! J = sum_{t<H} g^t r_t + g^H V(z_H) - beta * (sum_{t<H} u(z_{t+1}, a_t) + u(z_H, a_H))
//!     u = mean_i Q_i x std_i Q_i   (std with Bessel's correction)
//!     V(z_H) = (Q_i + Q_j)(z_H, a_H) / 2,  i != j drawn at random,  a_H ~ pi(z_H)
//! ```
//! Every function here is a few flops per head; none allocates.

use crate::bundle::planner_options::UncertaintyAt;

/// Discount and uncertainty weight of J.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights {
    /// g in (0, 1].
    pub discount: f32,
    /// beta >= 0 (0 when uncertainty is off).
    pub beta: f32,
}

/// J of one candidate: `r(t)` gives r_t for t < H, `v` is V(z_H), and
/// `u(t)` the uncertainty term, read per `at`: at (z_t, a_t) for t < H,
/// weighted beta g^t (`CurrentState`), or the authors' form
/// (`NextState`): at (z_{t+1}, a_t) for t < H and at (z_H, a_H) for t = H,
/// weighted beta, undiscounted.
pub fn objective(
    w: Weights,
    at: UncertaintyAt,
    horizon: usize,
    r: impl Fn(usize) -> f32,
    u: impl Fn(usize) -> f32,
    v: f32,
) -> f32 {
    let discounted_u = at == UncertaintyAt::CurrentState;
    let mut j = 0.0;
    let mut g_t = 1.0;
    for t in 0..horizon {
        let penalty = if discounted_u { w.beta * u(t) } else { 0.0 };
        j += g_t * (r(t) - penalty);
        g_t *= w.discount;
    }
    let j = j + g_t * v;
    if discounted_u {
        j
    } else {
        j - w.beta * (0..=horizon).map(u).sum::<f32>()
    }
}

/// dJ/dr_t = g^t; dJ/du_t = -beta g^t; dJ/dV = g^H.
pub fn discount_pow(w: Weights, t: usize) -> f32 {
    w.discount.powi(t as i32)
}

/// Mean over the heads of one row.
pub fn mean(q: &[f32]) -> f32 {
    q.iter().sum::<f32>() / q.len() as f32
}

/// Mean and sum of squared deviations from it over the heads of one row.
fn mean_ss(q: &[f32]) -> (f32, f32) {
    let m = mean(q);
    (m, q.iter().map(|x| (x - m) * (x - m)).sum::<f32>())
}

/// Population standard deviation over the heads of one row.
pub fn spread(q: &[f32]) -> f32 {
    (mean_ss(q).1 / q.len() as f32).sqrt()
}

/// `mean_i q_i * std_i q_i` with the unbiased (n - 1) std; 0 for one head.
pub fn mean_std(q: &[f32]) -> f32 {
    let n = q.len();
    if n < 2 {
        return 0.0;
    }
    let (m, ss) = mean_ss(q);
    m * (ss / (n - 1) as f32).sqrt()
}

/// `out[i] = scale * d mean_std / d q_i = scale (s / n + m (q_i - m) / ((n - 1) s))`;
/// the second term is zero where the heads agree exactly.
pub fn mean_std_vjp(q: &[f32], scale: f32, out: &mut [f32]) {
    let n = q.len();
    if n < 2 {
        out.iter_mut().for_each(|o| *o = 0.0);
        return;
    }
    let (m, ss) = mean_ss(q);
    let s = (ss / (n - 1) as f32).sqrt();
    for (o, x) in out.iter_mut().zip(q) {
        let ds = if s > 0.0 {
            (x - m) / ((n - 1) as f32 * s)
        } else {
            0.0
        };
        *o = scale * (s / n as f32 + m * ds);
    }
}

/// Mean of heads `i` and `j` (TD-MPC2's two-random-heads value).
pub fn two_heads(q: &[f32], [i, j]: [usize; 2]) -> f32 {
    0.5 * (q[i] + q[j])
}

/// `out = scale * d two_heads / d q`.
pub fn two_heads_vjp([i, j]: [usize; 2], scale: f32, out: &mut [f32]) {
    out.iter_mut().for_each(|o| *o = 0.0);
    out[i] += 0.5 * scale;
    out[j] += 0.5 * scale;
}

/// `out[i] = scale * d mean / d q_i`.
pub fn mean_vjp(q: &[f32], scale: f32, out: &mut [f32]) {
    let d = scale / q.len() as f32;
    out.iter_mut().for_each(|o| *o = d);
}

/// `out[i] = scale * d spread / d q_i = scale (q_i - mean) / (n spread)`;
/// zero where the heads agree exactly (the spread's subgradient at 0).
pub fn spread_vjp(q: &[f32], scale: f32, out: &mut [f32]) {
    let m = mean(q);
    let s = spread(q);
    let n = q.len() as f32;
    for (o, x) in out.iter_mut().zip(q) {
        *o = if s > 0.0 {
            scale * (x - m) / (n * s)
        } else {
            0.0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Weights = Weights {
        discount: 0.5,
        beta: 2.0,
    };
    const R: [f32; 3] = [1.0, 2.0, 4.0];

    #[test]
    fn objective_matches_the_sum_by_hand() {
        let (w, r) = (W, R);
        let u = [0.5, 0.0, 1.0];
        let j = objective(w, UncertaintyAt::CurrentState, 3, |t| r[t], |t| u[t], 8.0);
        // (1 - 1) + 0.5 (2 - 0) + 0.25 (4 - 2) + 0.125 * 8
        assert!((j - (0.0 + 1.0 + 0.5 + 1.0)).abs() < 1e-6, "{j}");
    }

    #[test]
    fn authors_objective_matches_the_sum_by_hand() {
        let (w, r) = (W, R);
        let u = [0.5, 0.0, 1.0, 0.25];
        let j = objective(w, UncertaintyAt::NextState, 3, |t| r[t], |t| u[t], 8.0);
        // 1 + 0.5 * 2 + 0.25 * 4 + 0.125 * 8 - 2 (0.5 + 0 + 1 + 0.25)
        assert!((j - (4.0 - 3.5)).abs() < 1e-6, "{j}");
        // mean 2, unbiased std of [1, 2, 3] = 1
        assert!((mean_std(&[1.0, 2.0, 3.0]) - 2.0).abs() < 1e-6);
        assert_eq!(mean_std(&[4.0]), 0.0);
        assert_eq!(two_heads(&[1.0, 5.0, 3.0], [2, 0]), 2.0);
    }

    /// `vjp(q, 1, g)` against central differences of `f` at five heads.
    fn agrees_with_finite_differences(f: fn(&[f32]) -> f32, vjp: fn(&[f32], f32, &mut [f32])) {
        let q = [1.0f32, -0.5, 2.0, 0.25, 0.7];
        let mut g = [0.0; 5];
        vjp(&q, 1.0, &mut g);
        for i in 0..5 {
            let (mut p, mut m) = (q, q);
            p[i] += 1e-3;
            m[i] -= 1e-3;
            let fd = (f(&p) - f(&m)) / 2e-3;
            assert!((fd - g[i]).abs() < 1e-3, "head {i}: {fd} vs {}", g[i]);
        }
    }

    #[test]
    fn mean_std_gradient_agrees_with_finite_differences() {
        agrees_with_finite_differences(mean_std, mean_std_vjp);
    }

    #[test]
    fn spread_and_its_gradient_agree_with_finite_differences() {
        assert!((mean(&[1.0f32, -0.5, 2.0, 0.25, 0.7]) - 0.69).abs() < 1e-6);
        agrees_with_finite_differences(spread, spread_vjp);
        let mut g = [1.0; 2];
        spread_vjp(&[3.0, 3.0], 1.0, &mut g);
        assert_eq!(g, [0.0, 0.0]);
    }
}
