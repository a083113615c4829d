//! The per-core arithmetic peak of the CPU the benchmarks run on, measured
//! rather than assumed: the development machines differ (an AMD EPYC of the
//! Zen 5 class here retires one 16-lane FMA per cycle, about 116 GFLOP/s,
//! while the 256 GFLOP/s once used as "the" peak assumes two), so "% of
//! peak" only means something against the core that produced the timing.
//!
//! [`measure`] runs independent FMA chains (12 vector accumulators, enough
//! to hide the FMA latency) for about 70 ms each: float32 FMA at the widest
//! kernel path the CPU has, and `vdpbf16ps` where AVX512-BF16 exists; the
//! best of three runs each.

use std::time::Instant;

/// Measured single-thread peaks, GFLOP/s (2 flops per multiply-add).
#[derive(Clone, Copy, Debug)]
pub struct Peak {
    /// float32 FMA at the widest vector width the kernels use.
    pub f32_fma: f64,
    /// `vdpbf16ps` (AVX512-BF16), when the CPU has it.
    pub bf16_dot: Option<f64>,
}

impl Peak {
    /// One line for a benchmark header.
    pub fn describe(&self) -> String {
        match self.bf16_dot {
            Some(b) => format!(
                "measured single-core peak: f32 FMA {:.0} GFLOP/s, bf16 vdpbf16ps {b:.0} GFLOP/s",
                self.f32_fma
            ),
            None => format!(
                "measured single-core peak: f32 FMA {:.0} GFLOP/s",
                self.f32_fma
            ),
        }
    }
}

/// Runs the peak loops (about half a second) on the calling thread, after
/// one warm-up round (the core's clock ramps up under load).
pub fn measure() -> Peak {
    f32_fma_gflops();
    Peak {
        f32_fma: best_of(3, f32_fma_gflops),
        bf16_dot: bf16_dot_available().then(|| best_of(3, bf16_dot_gflops)),
    }
}

fn best_of(n: usize, f: fn() -> f64) -> f64 {
    (0..n).map(|_| f()).fold(0.0, f64::max)
}

fn bf16_dot_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Rounds of 12 vector FMAs per measurement (~70 ms of f32 FMA here).
const ITERS: usize = 20_000_000;

fn f32_fma_gflops() -> f64 {
    let t0 = Instant::now();
    let (sum, lanes) = f32_fma_loop(ITERS);
    let dt = t0.elapsed().as_secs_f64();
    std::hint::black_box(sum);
    (ITERS * 12 * lanes * 2) as f64 / dt / 1e9
}

fn bf16_dot_gflops() -> f64 {
    let t0 = Instant::now();
    let sum = bf16_dot_loop(ITERS);
    let dt = t0.elapsed().as_secs_f64();
    std::hint::black_box(sum);
    // 16 lanes x 2 products, 2 flops each.
    (ITERS * 12 * 64) as f64 / dt / 1e9
}

/// `(checksum, lanes per FMA)` of `iters` rounds of 12 independent FMAs.
fn f32_fma_loop(iters: usize) -> (f32, usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: feature checked just above.
            return (unsafe { fma_avx512(iters) }, 16);
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: features checked just above.
            return (unsafe { fma_avx2(iters) }, 8);
        }
    }
    let mut acc = [0.0f32; 12];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = a.mul_add(0.999, 0.001);
        }
    }
    (acc.iter().sum(), 1)
}

/// Defines `unsafe fn $name(iters) -> f32`: `iters` rounds of 12
/// independent `$step` chains (on `acc`, with the two constant operands
/// named before them) on vectors of `$set1`, then the lane sum `$sum`.
macro_rules! chains {
    ($(#[$doc:meta])* $name:ident, $feature:literal, $set1:ident,
     $ai:ident = $a:expr, $bi:ident = $b:expr, |$acc:ident| $step:expr, |$v:ident| $sum:expr) => {
        $(#[$doc])*
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        unsafe fn $name(iters: usize) -> f32 {
            use std::arch::x86_64::*;
            let mut accs = [$set1(0.0); 12];
            let ($ai, $bi) = ($a, $b);
            for _ in 0..iters {
                for $acc in accs.iter_mut() {
                    *$acc = $step;
                }
            }
            accs.iter().map(|$v| $sum).sum()
        }
    };
}

chains!(
    /// # Safety
    /// The CPU supports AVX-512F.
    fma_avx512, "avx512f", _mm512_set1_ps, a = _mm512_set1_ps(0.999), b = _mm512_set1_ps(0.001),
    |x| _mm512_fmadd_ps(a, *x, b), |x| _mm512_reduce_add_ps(*x)
);
chains!(
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    fma_avx2, "avx2,fma", _mm256_set1_ps, a = _mm256_set1_ps(0.999), b = _mm256_set1_ps(0.001),
    |x| _mm256_fmadd_ps(a, *x, b),
    |x| {
        let mut out = [0.0f32; 8];
        // SAFETY: `out` holds 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), *x) };
        out.iter().sum::<f32>()
    }
);
chains!(
    /// # Safety
    /// The CPU supports AVX-512F and AVX512-BF16.
    dot_bf16, "avx512f,avx512bf16", _mm512_set1_ps,
    a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.999), _mm512_set1_ps(0.5)),
    b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.001), _mm512_set1_ps(0.25)),
    |x| _mm512_dpbf16_ps(*x, a, b), |x| _mm512_reduce_add_ps(*x)
);

fn bf16_dot_loop(iters: usize) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if bf16_dot_available() {
        // SAFETY: features checked just above.
        return unsafe { dot_bf16(iters) };
    }
    let _ = iters;
    0.0
}

#[cfg(test)]
mod tests {
    /// The loops run and give a plausible figure: above 1 GFLOP/s (any
    /// CPU of this decade, even unvectorized) and below 10 TFLOP/s (one
    /// core cannot).
    #[test]
    fn peaks_are_plausible() {
        let p = super::measure();
        assert!(p.f32_fma > 1.0 && p.f32_fma < 10_000.0, "{p:?}");
        if let Some(b) = p.bf16_dot {
            assert!(b > 1.0 && b < 20_000.0, "{p:?}");
        }
        assert!(p.describe().contains("GFLOP/s"));
    }
}
