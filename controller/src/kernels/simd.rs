//! Vectorized element-wise kernels: Mish (forward and VJP) on a polynomial
//! `exp`, and LayerNorm's reductions in 16 partial sums, each compiled for
//! AVX-512, AVX2+FMA and plain Rust and dispatched on
//! [`kernel_path`](super::gemm::kernel_path) like the GEMM.
//!
//! Why: at the planner's batch of 5-9 rows the GEMM streams weights and the
//! element-wise passes (libm's scalar `expf` inside Mish, LayerNorm's
//! sequential sums, both compiled for the SSE2 baseline) were 20-50 % of a
//! Dream-MPC tick (perf, docs/RESULTS.md). The bodies below are branch-free
//! so the compiler vectorizes them at the width of the enclosing target.
//!
//! [`tuned`] selects these kernels (and the skipping of all-zero
//! cotangents in the backward passes); `DREAM_MPC_TUNING=off` or
//! [`set_tuned`]`(false)` brings back the previous scalar code, kept as the
//! reference path for tests and for side-by-side benchmarks.
//!
//! Control-path cost: one pass over the values (Mish: one `exp`, one
//! division and ~20 flops per value; LayerNorm: three passes per group),
//! one atomic load to dispatch, no allocation.

use super::gemm::{fmadd as fma, kernel_path, KernelPath};
use std::sync::atomic::{AtomicU8, Ordering};

/// 0 = not resolved yet, 1 = off (reference), 2 = on.
static TUNED: AtomicU8 = AtomicU8::new(0);

/// Whether the tuned element-wise kernels and zero-cotangent skipping are
/// in use: on unless `DREAM_MPC_TUNING=off` (read on first call, which
/// allocates; compiling a program resolves it with the kernel path).
pub fn tuned() -> bool {
    match TUNED.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let on = !matches!(std::env::var("DREAM_MPC_TUNING").as_deref(), Ok("off"));
            set_tuned(on);
            on
        }
    }
}

/// Switches the tuned kernels on or off for the whole process (tests and
/// benchmarks compare both).
pub fn set_tuned(on: bool) {
    TUNED.store(if on { 2 } else { 1 }, Ordering::Relaxed);
}

/// Whether every value is exactly zero (stops at the first that is not, so
/// a live cotangent costs one comparison).
#[inline]
pub fn all_zero(x: &[f32]) -> bool {
    x.iter().all(|v| *v == 0.0)
}

/// `e^x` for `x` in [-87, 88] (clamped outside; NaN stays NaN), relative error about
/// 2e-7: `x = n ln2 + r` with `|r| <= ln2 / 2`, a degree-6 polynomial for
/// `e^r` (Cephes' `expf` coefficients) and `2^n` built in the exponent bits.
/// Branch-free, so it vectorizes.
#[inline(always)]
fn exp_poly<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const SHIFT: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = fma::<FMA>(x, LOG2E, SHIFT);
    let n = t - SHIFT;
    let r = fma::<FMA>(n, -LN2_HI, x);
    let r = fma::<FMA>(n, -LN2_LO, r);
    let mut p = 1.987_569_1e-4;
    p = fma::<FMA>(p, r, 1.398_199_9e-3);
    p = fma::<FMA>(p, r, 8.333_452e-3);
    p = fma::<FMA>(p, r, 4.166_579_6e-2);
    p = fma::<FMA>(p, r, 1.666_666_5e-1);
    p = fma::<FMA>(p, r, 0.5);
    let p = fma::<FMA>(p, r * r, r) + 1.0;
    let scale = f32::from_bits(t.to_bits().wrapping_sub(SHIFT.to_bits()).wrapping_add(127) << 23);
    p * scale
}

/// `(tanh(softplus(x)), sigmoid(x))` from one polynomial `exp` (see
/// `nn::mish_parts`); above 20 both round to 1 in f32, so `x` is capped
/// there instead of branching.
#[inline(always)]
fn mish_parts<const FMA: bool>(x: f32) -> (f32, f32) {
    let e = exp_poly::<FMA>(x.min(20.0));
    let n = e * (e + 2.0);
    (n / (n + 2.0), e / (1.0 + e))
}

#[inline(always)]
fn mish_fwd<const FMA: bool>(x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = x * mish_parts::<FMA>(*x).0;
    }
}

#[inline(always)]
fn mish_bwd<const FMA: bool>(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    for (g, (d, x)) in dx.iter_mut().zip(dy.iter().zip(x)) {
        let (t, s) = mish_parts::<FMA>(*x);
        *g = fma::<FMA>(*d, fma::<FMA>(x * s, 1.0 - t * t, t), *g);
    }
}

/// Sum in 16 independent lanes (vectorizable, unlike a sequential sum).
#[inline(always)]
fn sum16(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += f(*v);
        }
    }
    acc.iter().sum::<f32>() + tail.iter().map(|v| f(*v)).sum::<f32>()
}

/// Two sums in 16 lanes each of `f(a_i, b_i, c_i)` over three zipped
/// slices (whole 16-lane chunks, so the compiler keeps them in vectors).
#[inline(always)]
fn sum16x2(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> (f32, f32)) -> (f32, f32) {
    let (mut s0, mut s1) = ([0.0f32; 16], [0.0f32; 16]);
    let (ca, cb, cc) = (a.chunks_exact(16), b.chunks_exact(16), c.chunks_exact(16));
    let (ta, tb, tc) = (ca.remainder(), cb.remainder(), cc.remainder());
    for ((xa, xb), xc) in ca.zip(cb).zip(cc) {
        for l in 0..16 {
            let (u, v) = f(xa[l], xb[l], xc[l]);
            s0[l] += u;
            s1[l] += v;
        }
    }
    let (mut t0, mut t1) = (s0.iter().sum::<f32>(), s1.iter().sum::<f32>());
    for ((x, y), z) in ta.iter().zip(tb).zip(tc) {
        let (u, v) = f(*x, *y, *z);
        t0 += u;
        t1 += v;
    }
    (t0, t1)
}

/// Largest value, in 16 lanes (`f32::max` ignores NaN like the fold it
/// replaces).
#[inline(always)]
fn max16(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = a.max(*v);
        }
    }
    acc.iter()
        .chain(tail)
        .fold(f32::NEG_INFINITY, |m, v| m.max(*v))
}

/// Two-hot moments of `logits` with bin centres `vmin + k step`: into
/// `out`, `[top, z, s]` with `top = max_k l_k`, `e_k = exp(l_k - top)`,
/// `z = sum_k e_k`, `s = sum_k e_k c_k`; the `e_k` into `e` unless `e` is
/// empty.
#[inline(always)]
fn two_hot_sums<const FMA: bool>(
    logits: &[f32],
    vmin: f32,
    step: f32,
    e: &mut [f32],
    out: &mut [f32],
) {
    let top = max16(logits);
    let keep = !e.is_empty();
    let (mut z, mut sm) = ([0.0f32; 16], [0.0f32; 16]);
    let n = logits.len();
    let mut base = 0;
    while base < n {
        let w = 16.min(n - base);
        let mut v = [0.0f32; 16];
        if w == 16 {
            for (v, l) in v.iter_mut().zip(&logits[base..base + 16]) {
                *v = exp_poly::<FMA>(l - top);
            }
        } else {
            for (v, l) in v.iter_mut().zip(&logits[base..]) {
                *v = exp_poly::<FMA>(l - top);
            }
        }
        for l in 0..16 {
            z[l] += v[l];
            sm[l] = fma::<FMA>(v[l], fma::<FMA>((base + l) as f32, step, vmin), sm[l]);
        }
        if keep {
            e[base..base + w].copy_from_slice(&v[..w]);
        }
        base += 16;
    }
    let (z, s) = (z.iter().sum::<f32>(), sm.iter().sum::<f32>());
    out[0] = top;
    out[1] = z;
    out[2] = s;
}

/// `d_k *= scale (vmin + k step - s)`: the last pass of the two-hot VJP.
#[inline(always)]
fn two_hot_finish<const FMA: bool>(d: &mut [f32], vmin: f32, step: f32, s: f32, scale: f32) {
    for (k, d) in d.iter_mut().enumerate() {
        *d *= scale * (fma::<FMA>(k as f32, step, vmin) - s);
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn ln_fwd<const FMA: bool>(
    d: usize,
    eps: f32,
    gamma: &[f32],
    beta: &[f32],
    x: &[f32],
    y: &mut [f32],
    st: &mut [f32],
) {
    let inv_d = 1.0 / d as f32;
    for ((xg, yg), s) in x
        .chunks_exact(d)
        .zip(y.chunks_exact_mut(d))
        .zip(st.chunks_exact_mut(2))
    {
        let mean = sum16(xg, |v| v) * inv_d;
        let var = sum16(xg, |v| (v - mean) * (v - mean)) * inv_d;
        let rstd = 1.0 / (var + eps).sqrt();
        for (((y, x), g), b) in yg.iter_mut().zip(xg).zip(gamma).zip(beta) {
            *y = fma::<FMA>((x - mean) * rstd, *g, *b);
        }
        s[0] = mean;
        s[1] = rstd;
    }
}

#[inline(always)]
fn ln_bwd<const FMA: bool>(
    d: usize,
    gamma: &[f32],
    x: &[f32],
    st: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) {
    let inv_d = 1.0 / d as f32;
    for (((xg, dyg), dxg), s) in x
        .chunks_exact(d)
        .zip(dy.chunks_exact(d))
        .zip(dx.chunks_exact_mut(d))
        .zip(st.chunks_exact(2))
    {
        if all_zero(dyg) {
            continue;
        }
        let (mean, rstd) = (s[0], s[1]);
        // g = dy * gamma; dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
        let (sg, sgx) = sum16x2(xg, dyg, gamma, |x, dy, gm| {
            let g = dy * gm;
            (g, g * (x - mean) * rstd)
        });
        let (mg, mgx) = (sg * inv_d, sgx * inv_d);
        for (((dx, x), dy), gm) in dxg.iter_mut().zip(xg).zip(dyg).zip(gamma) {
            let xhat = (x - mean) * rstd;
            *dx += rstd * (dy * gm - mg - xhat * mgx);
        }
    }
}

/// Defines `pub(crate) fn $name(args)` that runs `$body::<FMA>(args)`
/// compiled for the kernel path in use: AVX-512 (+FMA), AVX2+FMA, or the
/// baseline target without FMA (plain Rust, any architecture).
macro_rules! multiversion {
    ($(#[$doc:meta])* $name:ident => $body:ident($($arg:ident: $ty:ty),* $(,)?)) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                /// # Safety
                /// The CPU must support AVX-512F, AVX2 and FMA.
                #[target_feature(enable = "avx512f,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) {
                    $body::<true>($($arg),*)
                }
                /// # Safety
                /// The CPU must support AVX2 and FMA.
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    $body::<true>($($arg),*)
                }
                match kernel_path() {
                    // SAFETY: `kernel_path` only returns a path the CPU supports.
                    KernelPath::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    KernelPath::Avx2 => return unsafe { avx2($($arg),*) },
                    KernelPath::Scalar => {}
                }
            }
            $body::<false>($($arg),*)
        }
    };
}

multiversion!(
    /// `y = x tanh(softplus(x))` element-wise.
    mish_forward => mish_fwd(x: &[f32], y: &mut [f32])
);
multiversion!(
    /// `dx += dy * dMish/dx` element-wise.
    mish_backward => mish_bwd(x: &[f32], dy: &[f32], dx: &mut [f32])
);
multiversion!(
    /// LayerNorm over groups of `d`: `y = (x - mean) rstd gamma + beta`,
    /// `(mean, rstd)` per group into `st`.
    layer_norm_forward => ln_fwd(
        d: usize,
        eps: f32,
        gamma: &[f32],
        beta: &[f32],
        x: &[f32],
        y: &mut [f32],
        st: &mut [f32],
    )
);
multiversion!(
    /// LayerNorm's VJP accumulated into `dx`; groups whose cotangent is
    /// all zero are skipped.
    layer_norm_backward => ln_bwd(
        d: usize,
        gamma: &[f32],
        x: &[f32],
        st: &[f32],
        dy: &[f32],
        dx: &mut [f32],
    )
);

multiversion!(
    /// Two-hot moments `[top, z, s]` into `out` (3 floats), exponentials
    /// into `e` unless empty (see `planner::decode`).
    two_hot_moments => two_hot_sums(logits: &[f32], vmin: f32, step: f32, e: &mut [f32], out: &mut [f32])
);
multiversion!(
    /// `d_k *= scale (vmin + k step - s)`.
    two_hot_vjp_finish => two_hot_finish(d: &mut [f32], vmin: f32, step: f32, s: f32, scale: f32)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomial_exp_is_within_a_few_ulps_of_libm() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            for (got, fma_) in [(exp_poly::<false>(x), false), (exp_poly::<true>(x), true)] {
                let want = (x as f64).exp();
                let rel = ((got as f64 - want) / want).abs();
                assert!(rel < 1e-6, "exp({x}) = {got} vs {want} (fma {fma_})");
                worst = worst.max(rel);
            }
            x += 0.013;
        }
        assert!(
            worst > 0.0,
            "an exact match everywhere means the test is broken"
        );
        assert_eq!(exp_poly::<false>(0.0), 1.0);
        assert_eq!(exp_poly::<false>(-1000.0), exp_poly::<false>(-87.0));
    }

    #[test]
    fn mish_and_its_vjp_match_the_reference_formulas() {
        let xs: Vec<f32> = (0..203).map(|i| (i as f32 - 101.0) * 0.23).collect();
        let mut y = vec![0.0; xs.len()];
        mish_forward(&xs, &mut y);
        let dy: Vec<f32> = (0..xs.len()).map(|i| 1.0 + 0.01 * i as f32).collect();
        let mut dx = vec![0.5; xs.len()];
        mish_backward(&xs, &dy, &mut dx);
        for (i, &x) in xs.iter().enumerate() {
            let xd = x as f64;
            let sp = xd.exp().ln_1p();
            let want = xd * sp.tanh();
            assert!(
                (y[i] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
                "{x}"
            );
            let s = 1.0 / (1.0 + (-xd).exp());
            let t = sp.tanh();
            let dwant = 0.5 + dy[i] as f64 * (t + xd * s * (1.0 - t * t));
            assert!(
                (dx[i] as f64 - dwant).abs() < 1e-5 * (1.0 + dwant.abs()),
                "d {x}"
            );
        }
        let mut nan = [0.0];
        mish_forward(&[f32::NAN], &mut nan);
        assert!(nan[0].is_nan());
    }

    #[test]
    fn layer_norm_matches_a_plain_f64_computation() {
        let d = 37;
        let x: Vec<f32> = (0..3 * d)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3)
            .collect();
        let gamma: Vec<f32> = (0..d).map(|i| 1.0 + 0.1 * i as f32).collect();
        let beta: Vec<f32> = (0..d).map(|i| 0.05 * i as f32).collect();
        let (mut y, mut st) = (vec![0.0; 3 * d], vec![0.0; 6]);
        layer_norm_forward(d, 1e-5, &gamma, &beta, &x, &mut y, &mut st);
        for g in 0..3 {
            let xg: Vec<f64> = x[g * d..(g + 1) * d].iter().map(|v| *v as f64).collect();
            let m = xg.iter().sum::<f64>() / d as f64;
            let v = xg.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / d as f64;
            for i in 0..d {
                let want = (xg[i] - m) / (v + 1e-5).sqrt() * gamma[i] as f64 + beta[i] as f64;
                assert!((y[g * d + i] as f64 - want).abs() < 1e-5, "{g} {i}");
            }
        }
        // Backward: the dot product with a cotangent against finite differences.
        let dy: Vec<f32> = (0..3 * d)
            .map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.2)
            .collect();
        let mut dx = vec![0.0; 3 * d];
        layer_norm_backward(d, &gamma, &x, &st, &dy, &mut dx);
        let f = |x: &[f32]| {
            let (mut y, mut st) = (vec![0.0; 3 * d], vec![0.0; 6]);
            layer_norm_forward(d, 1e-5, &gamma, &beta, x, &mut y, &mut st);
            y.iter().zip(&dy).map(|(a, b)| (a * b) as f64).sum::<f64>()
        };
        for i in [0, 5, d, 2 * d + 36] {
            let (mut p, mut m) = (x.clone(), x.clone());
            p[i] += 1e-2;
            m[i] -= 1e-2;
            let fd = (f(&p) - f(&m)) / 2e-2;
            assert!((fd - dx[i] as f64).abs() < 2e-3, "{i}: {fd} vs {}", dx[i]);
        }
    }
}
