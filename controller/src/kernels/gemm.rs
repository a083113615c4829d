//! `C += A B` for the small-row products of the control path, with no heap
//! allocation (nalgebra's `gemm` hands large products to `matrixmultiply`,
//! which allocates its packing buffers on every call).
//!
//! A register-blocked micro-kernel (8 rows x `NR` columns of accumulators,
//! broadcast-A times contiguous-B-row FMAs) compiled three times: AVX-512,
//! AVX2+FMA and the baseline target, picked at run time by CPU feature
//! detection (a cached atomic load per call).

#[inline(always)]
fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `c[MR', NR] += a[MR', k] b[k, j..j+NR]` for `MR'` rows starting at `i`.
#[inline(always)]
fn block<const R: usize, const NR: usize, const FMA: bool>(
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    i: usize,
    j: usize,
) {
    let mut acc = [[0.0f32; NR]; R];
    for p in 0..k {
        let brow: &[f32; NR] = b[p * n + j..p * n + j + NR].try_into().expect("NR columns");
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = a[(i + r) * k + p];
            for (x, bv) in acc_r.iter_mut().zip(brow) {
                *x = fmadd::<FMA>(av, *bv, *x);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        let crow = &mut c[(i + r) * n + j..(i + r) * n + j + NR];
        for (x, v) in crow.iter_mut().zip(acc_r) {
            *x += v;
        }
    }
}

#[inline(always)]
fn gemm_generic<const NR: usize, const FMA: bool>(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
    // Rows 8 at a time (one pass over each B panel for a planner's 8
    // candidates), then 4, then 1.
    let nfull = n / NR * NR;
    for j in (0..nfull).step_by(NR) {
        let mut i = 0;
        while i + 8 <= m {
            block::<8, NR, FMA>(k, n, a, b, c, i, j);
            i += 8;
        }
        if i + 4 <= m {
            block::<4, NR, FMA>(k, n, a, b, c, i, j);
            i += 4;
        }
        while i < m {
            block::<1, NR, FMA>(k, n, a, b, c, i, j);
            i += 1;
        }
    }
    // Remaining columns (fewer than NR): plain loops.
    if nfull < n {
        for i in 0..m {
            let arow = &a[i * k..(i + 1) * k];
            let crow = &mut c[i * n + nfull..(i + 1) * n];
            for (p, av) in arow.iter().enumerate() {
                let brow = &b[p * n + nfull..(p + 1) * n];
                for (x, bv) in crow.iter_mut().zip(brow) {
                    *x = fmadd::<FMA>(*av, *bv, *x);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gemm_avx512(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    gemm_generic::<32, true>(m, k, n, a, b, c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_avx2(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    gemm_generic::<8, true>(m, k, n, a, b, c)
}

/// `c += a b` with `a` row-major `[m, k]`, `b` row-major `[k, n]`, `c`
/// row-major `[m, n]`. Cost: `m k n` multiply-adds; no allocation.
/// Panics if a slice is shorter than its shape.
pub fn gemm_acc(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "gemm_acc: slices shorter than [{m}x{k}] [{k}x{n}] [{m}x{n}]"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function was compiled for.
            return unsafe { gemm_avx512(m, k, n, a, b, c) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { gemm_avx2(m, k, n, a, b, c) };
        }
    }
    gemm_generic::<8, false>(m, k, n, a, b, c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Every path (full blocks, row tail, column tail) against a plain
    /// triple loop in f64, on shapes around the block sizes.
    #[test]
    fn matches_naive_on_odd_shapes() {
        let mut rng = Rng::new(3);
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 7),
            (4, 16, 64),
            (9, 33, 129),
            (5, 7, 200),
            (8, 64, 17),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| rng.normal() as f32).collect();
            let mut c = c0.clone();
            gemm_acc(m, k, n, &a, &b, &mut c);
            let mut c2 = c0.clone();
            gemm_generic::<8, false>(m, k, n, &a, &b, &mut c2);
            for i in 0..m {
                for j in 0..n {
                    let want = c0[i * n + j] as f64
                        + (0..k)
                            .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                            .sum::<f64>();
                    assert!(
                        (c[i * n + j] as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "({m},{k},{n}) at ({i},{j})"
                    );
                    assert!(
                        (c2[i * n + j] as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "portable ({m},{k},{n})"
                    );
                }
            }
        }
    }
}
