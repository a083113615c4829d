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
//! Every function here is a few flops per head; none allocates.

/// Discount and uncertainty weight of J.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights {
    /// g in (0, 1].
    pub discount: f32,
    /// beta >= 0 (0 when uncertainty is off).
    pub beta: f32,
}

/// J of one candidate: `r(t)` and `u(t)` give r_t and u_t for t < H, `v` is
/// V(z_H).
pub fn objective(
    w: Weights,
    horizon: usize,
    r: impl Fn(usize) -> f32,
    u: impl Fn(usize) -> f32,
    v: f32,
) -> f32 {
    let mut j = 0.0;
    let mut g_t = 1.0;
    for t in 0..horizon {
        j += g_t * (r(t) - w.beta * u(t));
        g_t *= w.discount;
    }
    j + g_t * v
}

/// dJ/dr_t = g^t; dJ/du_t = -beta g^t; dJ/dV = g^H.
pub fn discount_pow(w: Weights, t: usize) -> f32 {
    w.discount.powi(t as i32)
}

/// Mean over the heads of one row.
pub fn mean(q: &[f32]) -> f32 {
    q.iter().sum::<f32>() / q.len() as f32
}

/// Population standard deviation over the heads of one row.
pub fn spread(q: &[f32]) -> f32 {
    let m = mean(q);
    (q.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / q.len() as f32).sqrt()
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

    #[test]
    fn objective_matches_the_sum_by_hand() {
        let w = Weights {
            discount: 0.5,
            beta: 2.0,
        };
        let r = [1.0, 2.0, 4.0];
        let u = [0.5, 0.0, 1.0];
        let j = objective(w, 3, |t| r[t], |t| u[t], 8.0);
        // (1 - 1) + 0.5 (2 - 0) + 0.25 (4 - 2) + 0.125 * 8
        assert!((j - (0.0 + 1.0 + 0.5 + 1.0)).abs() < 1e-6, "{j}");
    }

    #[test]
    fn spread_and_its_gradient_agree_with_finite_differences() {
        let q = [1.0f32, -0.5, 2.0, 0.25, 0.7];
        assert!((mean(&q) - 0.69).abs() < 1e-6);
        let mut g = [0.0; 5];
        spread_vjp(&q, 1.0, &mut g);
        for i in 0..5 {
            let (mut p, mut m) = (q, q);
            p[i] += 1e-3;
            m[i] -= 1e-3;
            let fd = (spread(&p) - spread(&m)) / 2e-3;
            assert!((fd - g[i]).abs() < 1e-3, "head {i}: {fd} vs {}", g[i]);
        }
        spread_vjp(&[3.0, 3.0], 1.0, &mut g[..2]);
        assert_eq!(&g[..2], &[0.0, 0.0]);
    }
}
