//! `C += A B` for the small-row products of the control path, with no heap
//! allocation (nalgebra's `gemm` hands large products to `matrixmultiply`,
//! which allocates its packing buffers on every call).
//!
//! A register-blocked micro-kernel (8 rows x `NR` columns of accumulators,
//! broadcast-A times contiguous-B-row FMAs) compiled three times: AVX-512,
//! AVX2+FMA and the baseline target (plain Rust, no x86 assumptions: the
//! path for ARM robot computers); the packed-weight kernels have explicit
//! AVX-512 and AVX2 intrinsics. The path is picked once at run time from
//! CPU feature detection, or forced with `DREAM_MPC_KERNELS` (see
//! [`kernel_path`]); each call then costs one atomic load to dispatch.

/// `a b + c`, fused when `FMA` (only instantiate `FMA = true` inside a
/// function compiled with the `fma` feature; elsewhere it is a libm call).
#[inline(always)]
pub(super) fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
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

/// [`gemm_generic`] compiled for AVX-512 with FMA.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA (checked by the caller with
/// `is_x86_feature_detected!`); the slices are bounds-checked as usual.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gemm_avx512(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    gemm_generic::<32, true>(m, k, n, a, b, c)
}

/// [`gemm_generic`] compiled for AVX2 with FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
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
    match kernel_path() {
        // SAFETY: `kernel_path` only returns a path the CPU supports.
        KernelPath::Avx512 => return unsafe { gemm_avx512(m, k, n, a, b, c) },
        // SAFETY: as above.
        KernelPath::Avx2 => return unsafe { gemm_avx2(m, k, n, a, b, c) },
        KernelPath::Scalar => {}
    }
    gemm_generic::<8, false>(m, k, n, a, b, c)
}

/// Which GEMM implementation the kernels run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPath {
    /// Plain Rust, no target assumptions (compiles and runs anywhere, ARM
    /// included; the compiler may still auto-vectorize it).
    Scalar,
    /// x86-64 AVX2 + FMA.
    Avx2,
    /// x86-64 AVX-512F + FMA.
    Avx512,
}

impl KernelPath {
    pub const ALL: [KernelPath; 3] = [KernelPath::Scalar, KernelPath::Avx2, KernelPath::Avx512];

    /// Name used by `DREAM_MPC_KERNELS`.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Scalar => "scalar",
            KernelPath::Avx2 => "avx2",
            KernelPath::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the path.
    pub fn supported(self) -> bool {
        match self {
            KernelPath::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => {
                is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest path this CPU supports.
    pub fn best() -> KernelPath {
        [KernelPath::Avx512, KernelPath::Avx2]
            .into_iter()
            .find(|p| p.supported())
            .unwrap_or(KernelPath::Scalar)
    }
}

/// 0 = not resolved yet, else 1 + the index in [`KernelPath::ALL`].
static PATH: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// The path in use: on first call, `DREAM_MPC_KERNELS` (`scalar`, `avx2`,
/// `avx512`; unset or `auto` = the best the CPU supports); a path the CPU
/// cannot run, or an unknown name, falls back to the best one with a
/// message on stderr. The first call reads the environment (allocates);
/// planners and bundle loading resolve it at start-up, later calls are one
/// atomic load.
pub fn kernel_path() -> KernelPath {
    let v = PATH.load(std::sync::atomic::Ordering::Relaxed);
    if v > 0 {
        return KernelPath::ALL[v as usize - 1];
    }
    let best = KernelPath::best();
    let chosen = match std::env::var("DREAM_MPC_KERNELS") {
        Err(_) => best,
        Ok(name) if name.is_empty() || name == "auto" => best,
        Ok(name) => match KernelPath::ALL.into_iter().find(|p| p.name() == name) {
            Some(p) if p.supported() => p,
            Some(p) => {
                eprintln!(
                    "DREAM_MPC_KERNELS={name}: this CPU lacks {}; using {}",
                    p.name(),
                    best.name()
                );
                best
            }
            None => {
                eprintln!(
                    "DREAM_MPC_KERNELS={name} is not one of auto, scalar, avx2, avx512; using {}",
                    best.name()
                );
                best
            }
        },
    };
    store(chosen);
    chosen
}

fn store(p: KernelPath) {
    let i = KernelPath::ALL.iter().position(|&q| q == p).unwrap_or(0);
    PATH.store(i as u8 + 1, std::sync::atomic::Ordering::Relaxed);
}

/// Switches the path for the whole process (benchmarks and tests of each
/// path); refuses one the CPU cannot run.
pub fn set_kernel_path(p: KernelPath) -> Result<(), String> {
    if !p.supported() {
        return Err(format!("this CPU cannot run the {} kernels", p.name()));
    }
    store(p);
    Ok(())
}

/// Columns per panel of a [`PackedB`].
const PW: usize = 32;

/// A constant right-hand side `B [k, n]` stored panel by panel: for each
/// group of [`PW`] columns, its `k` rows of `PW` floats contiguously (the
/// last panel zero-padded). The micro-kernel then streams B sequentially
/// instead of jumping `n` floats between rows, which on model-sized
/// weights (megabytes, outside L2) is the difference between streaming and
/// a TLB miss every other row. Packed once at bundle load.
#[derive(Debug, Clone)]
pub struct PackedB {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl PackedB {
    /// Packs row-major `b [k, n]` (start-up only; allocates).
    pub fn new(k: usize, n: usize, b: &[f32]) -> Self {
        assert!(b.len() >= k * n, "PackedB: b shorter than [{k}x{n}]");
        let panels = n.div_ceil(PW);
        let mut data = vec![0.0; panels * k * PW];
        for jp in 0..panels {
            let (j0, w) = (jp * PW, PW.min(n - jp * PW));
            for p in 0..k {
                let dst = &mut data[(jp * k + p) * PW..(jp * k + p) * PW + w];
                dst.copy_from_slice(&b[p * n + j0..p * n + j0 + w]);
            }
        }
        PackedB { k, n, data }
    }
}

/// `c[R rows from i, panel jp] += a b` on a packed panel.
#[inline(always)]
fn panel<const R: usize, const FMA: bool>(
    k: usize,
    n: usize,
    a: &[f32],
    panel: &[f32],
    c: &mut [f32],
    i: usize,
    j0: usize,
) {
    let mut acc = [[0.0f32; PW]; R];
    for p in 0..k {
        let brow: &[f32; PW] = panel[p * PW..p * PW + PW].try_into().expect("PW columns");
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = a[(i + r) * k + p];
            for (x, bv) in acc_r.iter_mut().zip(brow) {
                *x = fmadd::<FMA>(av, *bv, *x);
            }
        }
    }
    let w = PW.min(n - j0);
    for (r, acc_r) in acc.iter().enumerate() {
        let crow = &mut c[(i + r) * n + j0..(i + r) * n + j0 + w];
        for (x, v) in crow.iter_mut().zip(acc_r) {
            *x += v;
        }
    }
}

/// The blocking every packed driver shares: for each 32-column panel of
/// `b`, call `block(panel, i, rows_left)` from row `i = 0` until `m`; the
/// call runs one micro-kernel on rows `i..` and returns how many rows it
/// took. Inlined into each driver, so the micro-kernels keep the driver's
/// target features.
#[inline(always)]
fn for_each_row_block(
    m: usize,
    b: &PackedB,
    mut block: impl FnMut(&[f32], usize, usize, usize) -> usize,
) {
    for (jp, pdata) in b.data.chunks_exact(b.k * PW).enumerate() {
        let mut i = 0;
        while i < m {
            i += block(pdata, jp * PW, i, m - i);
        }
    }
}

#[inline(always)]
fn gemm_packed_generic<const R: usize, const FMA: bool>(
    m: usize,
    a: &[f32],
    b: &PackedB,
    c: &mut [f32],
) {
    let (k, n) = (b.k, b.n);
    for_each_row_block(m, b, |pdata, j0, i, left| {
        if left >= R {
            panel::<R, FMA>(k, n, a, pdata, c, i, j0);
            R
        } else {
            panel::<1, FMA>(k, n, a, pdata, c, i, j0);
            1
        }
    });
}

/// Defines an explicit-intrinsics micro-kernel on one packed panel, `R`
/// rows x 32 columns held in `R x 32/W` vector accumulators of `W` lanes
/// (the compiler is not trusted to keep a `[[f32; 32]; R]` in registers),
/// then added into `c` (a partial last panel through a stack row), and the
/// driver that runs it over every panel, up to `$max` rows per pass.
/// Instantiated for AVX-512 (16 lanes, 12 rows: 24 of the 32 zmm, so a
/// planner's 8 candidates + 1 reused plan stream each weight once) and
/// AVX2/FMA (8 lanes, 3 rows: 12 accumulators + 4 B vectors of the 16 ymm).
///
/// Safety contract of both generated functions: the CPU supports
/// `$feature`; the micro-kernel needs `a` rows `i..i+R` of length `k`,
/// `panel` `k * 32` floats, `c` rows `i..i+R` of length `n` and `j0 < n`;
/// the driver needs `a` to hold `m * b.k` floats and `c` `m * b.n` (the
/// caller asserts both), which is the micro-kernel's contract for every
/// panel and row block.
macro_rules! packed_kernel {
    (
        $panel:ident, $driver:ident, $feature:literal, $w:literal, $max:literal,
        $zero:ident, $load:ident, $splat:ident, $fmadd:ident, $add:ident, $store:ident,
        [$($r:literal)*]
    ) => {
        /// One panel, `R` rows (see [`packed_kernel`]).
        ///
        /// # Safety
        /// As in [`packed_kernel`]'s contract.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        #[allow(clippy::needless_range_loop)] // index loops mirror the register tile
        unsafe fn $panel<const R: usize>(
            k: usize,
            n: usize,
            a: &[f32],
            panel: &[f32],
            c: &mut [f32],
            i: usize,
            j0: usize,
        ) {
            // SAFETY: the whole body runs under this function's `# Safety`
            // contract (CPU features checked by the caller, slice lengths
            // as documented; debug builds assert them).
            unsafe {
                use std::arch::x86_64::*;
                const V: usize = PW / $w;
                debug_assert!(
                    a.len() >= (i + R) * k && panel.len() >= k * PW && c.len() >= (i + R) * n
                );
                let mut acc = [[$zero(); V]; R];
                let ap = a.as_ptr().add(i * k);
                let bp = panel.as_ptr();
                for p in 0..k {
                    let mut b = [$zero(); V];
                    for q in 0..V {
                        b[q] = $load(bp.add(p * PW + $w * q));
                    }
                    for r in 0..R {
                        let av = $splat(*ap.add(r * k + p));
                        for q in 0..V {
                            acc[r][q] = $fmadd(av, b[q], acc[r][q]);
                        }
                    }
                }
                let w = PW.min(n - j0);
                for r in 0..R {
                    let cp = c.as_mut_ptr().add((i + r) * n + j0);
                    if w == PW {
                        for q in 0..V {
                            let cq = cp.add($w * q);
                            $store(cq, $add($load(cq), acc[r][q]));
                        }
                    } else {
                        let mut row = [0.0f32; PW];
                        for q in 0..V {
                            $store(row.as_mut_ptr().add($w * q), acc[r][q]);
                        }
                        for (jj, v) in row.iter().take(w).enumerate() {
                            *cp.add(jj) += v;
                        }
                    }
                }
            }
        }

        /// `c += a b` over every 32-column panel of `b`, up to `$max` rows
        /// per pass (see [`packed_kernel`]).
        ///
        /// # Safety
        /// As in [`packed_kernel`]'s contract.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        unsafe fn $driver(m: usize, a: &[f32], b: &PackedB, c: &mut [f32]) {
            // SAFETY: the whole body runs under this function's `# Safety`
            // contract.
            unsafe {
                let (k, n) = (b.k, b.n);
                for_each_row_block(m, b, |pdata, j0, i, left| {
                    let r = left.min($max);
                    match r {
                        $($r => $panel::<$r>(k, n, a, pdata, c, i, j0),)*
                        _ => $panel::<1>(k, n, a, pdata, c, i, j0),
                    }
                    r
                });
            }
        }
    };
}

packed_kernel!(
    panel_avx512, gemm_packed_avx512, "avx512f", 16, 12,
    _mm512_setzero_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps,
    _mm512_storeu_ps,
    [12 11 10 9 8 7 6 5 4 3 2]
);
packed_kernel!(
    panel_avx2, gemm_packed_avx2, "avx2,fma", 8, 3,
    _mm256_setzero_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps,
    _mm256_storeu_ps,
    [3 2]
);

/// `c += a b` with `a` row-major `[m, k]`, `b` packed `[k, n]`, `c`
/// row-major `[m, n]`. Cost: `m k n` multiply-adds; no allocation.
/// Panics if a slice is shorter than its shape.
pub fn gemm_acc_packed(m: usize, a: &[f32], b: &PackedB, c: &mut [f32]) {
    assert!(
        a.len() >= m * b.k && c.len() >= m * b.n,
        "gemm_acc_packed: slices shorter than [{m}x{}] [{m}x{}]",
        b.k,
        b.n
    );
    #[cfg(target_arch = "x86_64")]
    match kernel_path() {
        // SAFETY: `kernel_path` only returns a path the CPU supports.
        KernelPath::Avx512 => return unsafe { gemm_packed_avx512(m, a, b, c) },
        // SAFETY: as above.
        KernelPath::Avx2 => return unsafe { gemm_packed_avx2(m, a, b, c) },
        KernelPath::Scalar => {}
    }
    gemm_packed_generic::<2, false>(m, a, b, c)
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
            (9, 256, 512),
            (13, 40, 70),
            (25, 33, 64),
            (8, 70, 31),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| rng.normal() as f32).collect();
            let mut c = c0.clone();
            gemm_acc(m, k, n, &a, &b, &mut c);
            let mut c2 = c0.clone();
            gemm_generic::<8, false>(m, k, n, &a, &b, &mut c2);
            let packed = PackedB::new(k, n, &b);
            let mut c3 = c0.clone();
            gemm_acc_packed(m, &a, &packed, &mut c3);
            let mut c4 = c0.clone();
            gemm_packed_generic::<2, false>(m, &a, &packed, &mut c4);
            // The AVX2 path, which this (AVX-512) machine would not pick.
            let mut c5 = c0.clone();
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: features checked just above.
                unsafe { gemm_packed_avx2(m, &a, &packed, &mut c5) };
            } else {
                gemm_packed_generic::<2, false>(m, &a, &packed, &mut c5);
            }
            #[cfg(not(target_arch = "x86_64"))]
            gemm_packed_generic::<2, false>(m, &a, &packed, &mut c5);
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
                    for (got, path) in [
                        (&c2, "portable"),
                        (&c3, "packed"),
                        (&c4, "packed portable"),
                        (&c5, "packed avx2"),
                    ] {
                        assert!(
                            (got[i * n + j] as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "{path} ({m},{k},{n}) at ({i},{j})"
                        );
                    }
                }
            }
        }
    }
}
