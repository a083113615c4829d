//! Reward and value decoding of a bundle's outputs, and its derivative
//! (the planner back-propagates through it).
//!
//! `TwoHotSymlog { bins, vmin, vmax }` (TD-MPC2): the module outputs
//! `bins` logits `l`; with `p = softmax(l)` and bin centres
//! `b_k = vmin + k (vmax - vmin) / (bins - 1)`,
//!
//! ```text
//! s = sum_k p_k b_k          (expected value in symlog space)
//! y = symexp(s) = sign(s) (exp(|s|) - 1)
//! dy/dl_k = exp(|s|) p_k (b_k - s)
//! ```
//!
//! `Scalar`: `y = l_0`. Cost: O(bins) per decoded number; no allocation.

use crate::bundle::manifest::Decoding;
use crate::kernels::simd;

/// `sign(x) ln(1 + |x|)`.
pub fn symlog(x: f32) -> f32 {
    x.signum() * x.abs().ln_1p()
}

/// `sign(x) (exp(|x|) - 1)`, the inverse of [`symlog`].
pub fn symexp(x: f32) -> f32 {
    x.signum() * x.abs().exp_m1()
}

/// Bin centre `k` of a two-hot decoding.
fn centre(k: usize, bins: usize, vmin: f32, vmax: f32) -> f32 {
    if bins == 1 {
        vmin
    } else {
        vmin + (vmax - vmin) * k as f32 / (bins - 1) as f32
    }
}

/// Spacing of the bin centres of a two-hot decoding with `bins > 1`.
fn step(bins: usize, vmin: f32, vmax: f32) -> f32 {
    (vmax - vmin) / (bins - 1) as f32
}

/// Decodes one number from its `decoding.width()` outputs. With the tuned
/// kernels ([`simd::tuned`]) the softmax runs in 16 lanes on a polynomial
/// `exp`; `DREAM_MPC_TUNING=off` runs the scalar reference
/// ([`decode_reference`]).
pub fn decode(decoding: &Decoding, logits: &[f32]) -> f32 {
    match *decoding {
        Decoding::TwoHotSymlog { bins, vmin, vmax } if bins > 1 && simd::tuned() => {
            let mut m = [0.0f32; 3];
            simd::two_hot_moments(logits, vmin, step(bins, vmin, vmax), &mut [], &mut m);
            symexp(m[2] / m[1])
        }
        _ => decode_reference(decoding, logits),
    }
}

/// [`decode`] in plain scalar code (libm `exp`): the reference path.
pub fn decode_reference(decoding: &Decoding, logits: &[f32]) -> f32 {
    match *decoding {
        Decoding::Scalar => logits[0],
        Decoding::TwoHotSymlog { bins, vmin, vmax } => {
            let top = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let (mut z, mut s) = (0.0, 0.0);
            for (k, &l) in logits.iter().enumerate() {
                let e = (l - top).exp();
                z += e;
                s += e * centre(k, bins, vmin, vmax);
            }
            symexp(s / z)
        }
    }
}

/// Writes `dy * d decode / d logits` into `d_logits` (tuned or reference
/// as [`decode`]).
pub fn decode_vjp(decoding: &Decoding, logits: &[f32], dy: f32, d_logits: &mut [f32]) {
    match *decoding {
        Decoding::TwoHotSymlog { bins, vmin, vmax } if bins > 1 && simd::tuned() => {
            let h = step(bins, vmin, vmax);
            let mut m = [0.0f32; 3];
            simd::two_hot_moments(logits, vmin, h, d_logits, &mut m);
            let s = m[2] / m[1];
            simd::two_hot_vjp_finish(d_logits, vmin, h, s, dy * s.abs().exp() / m[1]);
        }
        _ => decode_vjp_reference(decoding, logits, dy, d_logits),
    }
}

/// [`decode_vjp`] in plain scalar code: the reference path.
pub fn decode_vjp_reference(decoding: &Decoding, logits: &[f32], dy: f32, d_logits: &mut [f32]) {
    match *decoding {
        Decoding::Scalar => d_logits[0] = dy,
        Decoding::TwoHotSymlog { bins, vmin, vmax } => {
            let top = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let mut z = 0.0;
            for (d, &l) in d_logits.iter_mut().zip(logits) {
                *d = (l - top).exp();
                z += *d;
            }
            let mut s = 0.0;
            for (k, d) in d_logits.iter_mut().enumerate() {
                *d /= z;
                s += *d * centre(k, bins, vmin, vmax);
            }
            let scale = dy * s.abs().exp();
            for (k, d) in d_logits.iter_mut().enumerate() {
                *d *= scale * (centre(k, bins, vmin, vmax) - s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symexp_inverts_symlog() {
        for x in [-50.0f32, -1.0, -0.1, 0.0, 0.3, 2.0, 40.0] {
            assert!(
                (symexp(symlog(x)) - x).abs() < 1e-4 * x.abs().max(1.0),
                "{x}"
            );
        }
    }

    #[test]
    fn two_hot_decodes_a_peaked_distribution_to_its_bin() {
        let d = Decoding::TwoHotSymlog {
            bins: 101,
            vmin: -10.0,
            vmax: 10.0,
        };
        let mut logits = vec![-30.0f32; 101];
        logits[60] = 30.0; // centre 2.0 in symlog space
        let y = decode(&d, &logits);
        assert!((y - symexp(2.0)).abs() < 1e-3, "{y}");
        assert_eq!(decode(&Decoding::Scalar, &[1.5]), 1.5);
    }

    /// The tuned two-hot decode and VJP (16 lanes, polynomial exp) agree
    /// with the scalar reference on random logits of TD-MPC2's 101 bins,
    /// peaked and flat, and on an odd bin count.
    #[test]
    fn tuned_two_hot_matches_the_reference() {
        let mut rng = crate::rng::Rng::new(5);
        for (bins, spread) in [(101usize, 1.0f32), (101, 8.0), (37, 3.0), (2, 1.0)] {
            let d = Decoding::TwoHotSymlog {
                bins,
                vmin: -10.0,
                vmax: 10.0,
            };
            for _ in 0..50 {
                let l: Vec<f32> = (0..bins).map(|_| spread * rng.normal() as f32).collect();
                let m = [0.0f32; 3];
                let mut m = m;
                crate::kernels::simd::two_hot_moments(
                    &l,
                    -10.0,
                    step(bins, -10.0, 10.0),
                    &mut [],
                    &mut m,
                );
                let tuned = symexp(m[2] / m[1]);
                let want = decode_reference(&d, &l);
                let top = l.iter().fold(f64::MIN, |a, v| a.max(*v as f64));
                let (z, sx) = l
                    .iter()
                    .enumerate()
                    .fold((0.0f64, 0.0f64), |(z, sx), (k, v)| {
                        let e = (*v as f64 - top).exp();
                        (
                            z + e,
                            sx + e * (-10.0 + 20.0 * k as f64 / (bins - 1) as f64),
                        )
                    });
                let exact = (sx / z).signum() * (sx / z).abs().exp_m1();
                assert!(
                    (tuned as f64 - exact).abs() <= 1e-4 * exact.abs().max(1.0)
                        && (tuned - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{bins}: tuned {tuned} vs reference {want}, f64 {exact}"
                );
                assert!((decode(&d, &l) - want).abs() <= 1e-4 * want.abs().max(1.0));
                let (mut g, mut gr) = (vec![0.0; bins], vec![0.0; bins]);
                decode_vjp(&d, &l, 0.7, &mut g);
                decode_vjp_reference(&d, &l, 0.7, &mut gr);
                let scale = gr.iter().fold(1e-3f32, |a, v| a.max(v.abs()));
                let sm = sx / z;
                for (k, (a, b)) in g.iter().zip(&gr).enumerate() {
                    let c = -10.0 + 20.0 * k as f64 / (bins - 1) as f64;
                    let p = (l[k] as f64 - top).exp() / z;
                    let gx = 0.7 * sm.abs().exp() * p * (c - sm);
                    // Both f32 paths sit ~5e-5 x scale from the f64 value
                    // (the cancellation in s); neither is the better one.
                    assert!(
                        (*a as f64 - gx).abs() <= 2e-4 * scale as f64
                            && (a - b).abs() <= 3e-4 * scale,
                        "{bins} k {k}: tuned {a} vs reference {b}, f64 {gx}, scale {scale}"
                    );
                }
            }
        }
    }

    #[test]
    fn two_hot_gradient_matches_finite_differences() {
        let d = Decoding::TwoHotSymlog {
            bins: 7,
            vmin: -3.0,
            vmax: 3.0,
        };
        let logits = [0.2f32, -1.0, 0.5, 1.3, -0.4, 0.9, 0.0];
        let mut g = [0.0; 7];
        decode_vjp(&d, &logits, 2.0, &mut g);
        for k in 0..7 {
            let (mut p, mut m) = (logits, logits);
            p[k] += 1e-3;
            m[k] -= 1e-3;
            let fd = 2.0 * (decode(&d, &p) - decode(&d, &m)) / 2e-3;
            assert!(
                (fd - g[k]).abs() < 2e-2 * fd.abs().max(1.0),
                "{k}: {fd} vs {}",
                g[k]
            );
        }
    }
}
