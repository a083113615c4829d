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

/// Decodes one number from its `decoding.width()` outputs.
pub fn decode(decoding: &Decoding, logits: &[f32]) -> f32 {
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

/// Writes `dy * d decode / d logits` into `d_logits`.
pub fn decode_vjp(decoding: &Decoding, logits: &[f32], dy: f32, d_logits: &mut [f32]) {
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
