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
/// compiling a program resolves it at start-up, later calls are one
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

/// How far ahead of the micro-kernel the packed weights are prefetched.
const PREFETCH_BYTES: usize = 4096;

/// How a [`PackedB`] stores its weights. The arithmetic is float32 either
/// way (products and sums in f32 registers); only the stored values differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Weights {
    /// float32, as trained: the default, and the format the 1e-4 reference
    /// checks are stated for.
    #[default]
    F32,
    /// bfloat16 (the top 16 bits of a float32, rounded to nearest even):
    /// half the bytes streamed per weight, about 3 significant digits (a
    /// relative rounding error of at most 2^-9 per weight). Widened to
    /// float32 in registers (one shift or mask per 16 weights), so every
    /// kernel path runs it; no AVX512-BF16 instruction is needed.
    Bf16,
}

impl Weights {
    /// Name used by `--weights`, the `weights` node parameter and
    /// `DREAM_MPC_WEIGHTS`.
    pub fn name(self) -> &'static str {
        match self {
            Weights::F32 => "f32",
            Weights::Bf16 => "bf16",
        }
    }

    /// Parses [`Weights::name`].
    pub fn parse(s: &str) -> Result<Weights, String> {
        match s {
            "f32" => Ok(Weights::F32),
            "bf16" => Ok(Weights::Bf16),
            _ => Err(format!("weights `{s}` is not one of f32, bf16")),
        }
    }

    /// Bytes per stored weight.
    pub fn bytes(self) -> usize {
        match self {
            Weights::F32 => 4,
            Weights::Bf16 => 2,
        }
    }
}

/// The bfloat16 bits of `x`, rounded to nearest even (NaN stays NaN).
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// `x` rounded to bfloat16 and widened back (what the bf16 kernels
/// multiply by).
pub fn bf16_round(x: f32) -> f32 {
    f32::from_bits((bf16_bits(x) as u32) << 16)
}

/// Whether this CPU has the AVX512-BF16 dot-product instruction that the
/// bfloat16 weights use on the AVX-512 path (`vdpbf16ps`: 32 multiply-adds
/// per instruction, twice the float32 FMA rate).
pub fn bf16_dot_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// 0 = not resolved yet, 1 = off, 2 = on.
static BF16_DOT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether bfloat16 weights on the AVX-512 path use `vdpbf16ps`: when the
/// CPU has it ([`bf16_dot_supported`]) unless `DREAM_MPC_BF16_DOT=off`
/// (then the activations stay float32 and the weights are widened, as on
/// the AVX2 and plain paths). Read once; later calls are one atomic load.
pub fn bf16_dot() -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    match BF16_DOT.load(Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let on = bf16_dot_supported()
                && !matches!(std::env::var("DREAM_MPC_BF16_DOT").as_deref(), Ok("off"));
            BF16_DOT.store(1 + u8::from(on), Relaxed);
            on
        }
    }
}

/// Switches the `vdpbf16ps` kernel on or off for the whole process (tests
/// and benchmarks compare both); refuses `on` where the CPU lacks it.
pub fn set_bf16_dot(on: bool) -> Result<(), String> {
    if on && !bf16_dot_supported() {
        return Err("this CPU has no AVX512-BF16".into());
    }
    BF16_DOT.store(1 + u8::from(on), std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The panels of a [`PackedB`]: float32 rows of [`PW`] floats, or bfloat16
/// row pairs of [`PW`] 32-bit words, word `j` holding row `2q` of column
/// `j` in its low half and row `2q + 1` in its high half (a zero row pads
/// an odd `k`). That pairing is the operand layout of `vdpbf16ps`, and a
/// shift or a mask widens either row to float32 lanes for the kernels that
/// multiply in float32.
#[derive(Debug, Clone)]
enum Panels {
    F32(Vec<f32>),
    Bf16(Vec<u32>),
}

/// A constant right-hand side `B [k, n]` stored panel by panel: for each
/// group of [`PW`] columns, its `k` rows contiguously (the last panel
/// zero-padded), in float32 or bfloat16 ([`Weights`]). The micro-kernel
/// then streams B sequentially instead of jumping `n` floats between rows,
/// which on model-sized weights (megabytes, outside L2) is the difference
/// between streaming and a TLB miss every other row. Packed once at
/// bundle load.
#[derive(Debug, Clone)]
pub struct PackedB {
    k: usize,
    n: usize,
    data: Panels,
}

impl PackedB {
    /// Packs row-major `b [k, n]` in float32 (start-up only; allocates).
    pub fn new(k: usize, n: usize, b: &[f32]) -> Self {
        PackedB::with_weights(k, n, b, Weights::F32)
    }

    /// Packs row-major `b [k, n]` stored as `weights` (start-up only;
    /// allocates `k * n` padded to whole panels, times
    /// [`Weights::bytes`]).
    pub fn with_weights(k: usize, n: usize, b: &[f32], weights: Weights) -> Self {
        assert!(b.len() >= k * n, "PackedB: b shorter than [{k}x{n}]");
        let panels = n.div_ceil(PW);
        // Row `p`, column `j` of panel `jp`; zero past `k` and `n`.
        let at = |jp: usize, p: usize, j: usize| {
            let col = jp * PW + j;
            if col < n && p < k {
                b[p * n + col]
            } else {
                0.0
            }
        };
        let data = match weights {
            Weights::F32 => {
                let mut data = Vec::with_capacity(panels * k * PW);
                for jp in 0..panels {
                    for p in 0..k {
                        data.extend((0..PW).map(|j| at(jp, p, j)));
                    }
                }
                Panels::F32(data)
            }
            Weights::Bf16 => {
                let mut data = Vec::with_capacity(panels * k.div_ceil(2) * PW);
                for jp in 0..panels {
                    for q in 0..k.div_ceil(2) {
                        data.extend((0..PW).map(|j| {
                            let lo = bf16_bits(at(jp, 2 * q, j)) as u32;
                            let hi = bf16_bits(at(jp, 2 * q + 1, j)) as u32;
                            lo | hi << 16
                        }));
                    }
                }
                Panels::Bf16(data)
            }
        };
        PackedB { k, n, data }
    }

    /// The storage format.
    pub fn weights(&self) -> Weights {
        match self.data {
            Panels::F32(_) => Weights::F32,
            Panels::Bf16(_) => Weights::Bf16,
        }
    }

    /// Bytes of packed weights (what one product streams).
    pub fn bytes(&self) -> usize {
        match &self.data {
            Panels::F32(d) => std::mem::size_of_val(d.as_slice()),
            Panels::Bf16(d) => std::mem::size_of_val(d.as_slice()),
        }
    }
}

/// A stored panel element: float32, or a word of two bfloat16 (see
/// [`Panels`]).
trait PanelElem: Copy {
    /// Elements per row of a panel, on average (bfloat16: a row pair per
    /// [`PW`] words).
    const ROW: usize;
    /// Elements of a whole panel of `k` rows.
    fn panel_len(k: usize) -> usize;
    /// Row `p` of a panel, widened to float32.
    fn row(panel: &[Self], p: usize) -> [f32; PW];
}

impl PanelElem for f32 {
    const ROW: usize = PW;
    fn panel_len(k: usize) -> usize {
        k * PW
    }
    #[inline(always)]
    fn row(panel: &[f32], p: usize) -> [f32; PW] {
        panel[p * PW..p * PW + PW].try_into().expect("PW columns")
    }
}

impl PanelElem for u32 {
    const ROW: usize = PW / 2;
    fn panel_len(k: usize) -> usize {
        k.div_ceil(2) * PW
    }
    #[inline(always)]
    fn row(panel: &[u32], p: usize) -> [f32; PW] {
        let words = &panel[p / 2 * PW..p / 2 * PW + PW];
        let shift = if p & 1 == 0 { 16 } else { 0 };
        let mut out = [0.0f32; PW];
        for (o, &v) in out.iter_mut().zip(words) {
            *o = f32::from_bits((v << shift) & 0xffff_0000);
        }
        out
    }
}

/// `c[R rows from i, panel jp] += a b` on a packed panel.
#[inline(always)]
fn panel<E: PanelElem, const R: usize, const FMA: bool>(
    k: usize,
    n: usize,
    a: &[f32],
    panel: &[E],
    c: &mut [f32],
    i: usize,
    j0: usize,
) {
    let mut acc = [[0.0f32; PW]; R];
    for p in 0..k {
        let brow = E::row(panel, p);
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = a[(i + r) * k + p];
            for (x, bv) in acc_r.iter_mut().zip(&brow) {
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
/// `data` (`k` rows), call `block(panel, j0, i, rows_left)` for the rows
/// `rows` (from `rows.start` until `rows.end`); the call runs one
/// micro-kernel on rows `i..` and returns how many rows it took. Inlined
/// into each driver, so the micro-kernels keep the driver's target
/// features.
#[inline(always)]
fn for_each_row_block<E: PanelElem>(
    rows: std::ops::Range<usize>,
    k: usize,
    data: &[E],
    mut block: impl FnMut(&[E], usize, usize, usize) -> usize,
) {
    for (jp, pdata) in data.chunks_exact(E::panel_len(k)).enumerate() {
        let mut i = rows.start;
        while i < rows.end {
            i += block(pdata, jp * PW, i, rows.end - i);
        }
    }
}

#[inline(always)]
fn gemm_packed_generic<E: PanelElem, const R: usize, const FMA: bool>(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    data: &[E],
    c: &mut [f32],
) {
    for_each_row_block(0..m, k, data, |pdata, j0, i, left| {
        if left >= R {
            panel::<E, R, FMA>(k, n, a, pdata, c, i, j0);
            R
        } else {
            panel::<E, 1, FMA>(k, n, a, pdata, c, i, j0);
            1
        }
    });
}

/// Row `p` of a float32 panel as vectors loaded by `$load` at the lane
/// offsets `$off`.
macro_rules! row_f32 {
    ($bp:expr, $p:expr, $load:ident, [$($off:literal)*]) => {
        [$($load($bp.add($p * PW + $off))),*]
    };
}
/// Row `p` of a bfloat16 panel (row pair `p / 2`, see [`Panels`]) as
/// float32 vectors, one per word offset `$off`: the low halves shifted up
/// (even `p`) or the high halves kept, then masked.
macro_rules! row_bf16 {
    ($bp:expr, $p:expr, $set1:ident, $load:ident, $sll:ident, $and:ident, $cast:ident,
     [$($off:literal)*]) => {{
        let words = $bp.add(($p >> 1) * PW);
        let shift = _mm_cvtsi32_si128((16 - 16 * ($p & 1)) as i32);
        let hi = $set1(-65536);
        [$($cast($and($sll($load(words.add($off).cast()), shift), hi))),*]
    }};
}
/// The four row loaders of the packed micro-kernels.
macro_rules! row_f32_avx512 {
    ($bp:expr, $p:expr) => {
        row_f32!($bp, $p, _mm512_loadu_ps, [0 16])
    };
}
macro_rules! row_f32_avx2 {
    ($bp:expr, $p:expr) => {
        row_f32!($bp, $p, _mm256_loadu_ps, [0 8 16 24])
    };
}
macro_rules! row_bf16_avx512 {
    ($bp:expr, $p:expr) => {
        row_bf16!($bp, $p, _mm512_set1_epi32, _mm512_loadu_si512, _mm512_sll_epi32,
                  _mm512_and_si512, _mm512_castsi512_ps, [0 16])
    };
}
macro_rules! row_bf16_avx2 {
    ($bp:expr, $p:expr) => {
        row_bf16!($bp, $p, _mm256_set1_epi32, _mm256_loadu_si256, _mm256_sll_epi32,
                  _mm256_and_si256, _mm256_castsi256_ps, [0 8 16 24])
    };
}

/// Defines an explicit-intrinsics micro-kernel on one packed panel, `R`
/// rows x 32 columns held in `R x 32/W` vector accumulators of `W` lanes
/// (the compiler is not trusted to keep a `[[f32; 32]; R]` in registers),
/// then added into `c` (a partial last panel through a stack row), and the
/// driver that runs it over every panel, up to `$max` rows per pass. The
/// panel element `$elem` (f32, or u32 words of two bfloat16) is widened to
/// float32 vectors by `$row!(panel pointer, p)`.
/// Instantiated for AVX-512 (16 lanes, 12 rows: 24 of the 32 zmm, so a
/// planner's 8 candidates + 1 reused plan stream each weight once) and
/// AVX2/FMA (8 lanes, 3 rows: 12 accumulators + 4 B vectors of the 16
/// ymm), each in float32 and bfloat16.
///
/// Safety contract of both generated functions: the CPU supports
/// `$feature`; the micro-kernel needs `a` rows `i..i+R` of length `k`,
/// `panel` `k` rows of a panel, `c` rows `i..i+R` of length `n` and
/// `j0 < n`; the driver needs `a` to hold `m * k` floats, `c` `m * n` and
/// `data` whole panels of `k` rows covering `n` columns (the caller
/// asserts the first two, [`PackedB`] guarantees the third), which is the
/// micro-kernel's contract for every panel and row block.
macro_rules! packed_kernel {
    (
        $panel:ident, $driver:ident, $feature:literal, $w:literal, $max:literal, $elem:ty, $row:ident,
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
            panel: &[$elem],
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
                const ROW: usize = <$elem as PanelElem>::ROW;
                const PREFETCH_ELEMS: usize = PREFETCH_BYTES / std::mem::size_of::<$elem>();
                debug_assert!(
                    a.len() >= (i + R) * k
                        && panel.len() >= <$elem as PanelElem>::panel_len(k)
                        && c.len() >= (i + R) * n
                );
                let mut acc = [[$zero(); V]; R];
                let ap = a.as_ptr().add(i * k);
                let bp = panel.as_ptr();
                for p in 0..k {
                    // Ask for the weights PREFETCH bytes ahead (the panels
                    // are one contiguous stream): out-of-order execution
                    // alone keeps too few cache misses in flight to stream
                    // a model larger than the caches.
                    let ahead = bp.wrapping_add(p * ROW + PREFETCH_ELEMS) as *const i8;
                    for line in 0..(ROW * std::mem::size_of::<$elem>()).div_ceil(64) {
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * line));
                    }
                    let b: [_; V] = $row!(bp, p);
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

        /// `c += a b` over every 32-column panel of `data`, up to `$max`
        /// rows per pass (see [`packed_kernel`]).
        ///
        /// # Safety
        /// As in [`packed_kernel`]'s contract.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        unsafe fn $driver(m: usize, k: usize, n: usize, a: &[f32], data: &[$elem], c: &mut [f32]) {
            // SAFETY: the whole body runs under this function's `# Safety`
            // contract.
            unsafe {
                for_each_row_block(0..m, k, data, |pdata, j0, i, left| {
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
    panel_avx512, gemm_packed_avx512, "avx512f", 16, 12, f32, row_f32_avx512,
    _mm512_setzero_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps,
    _mm512_storeu_ps,
    [12 11 10 9 8 7 6 5 4 3 2]
);
packed_kernel!(
    panel_avx512_bf16, gemm_packed_avx512_bf16, "avx512f", 16, 12, u32, row_bf16_avx512,
    _mm512_setzero_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps,
    _mm512_storeu_ps,
    [12 11 10 9 8 7 6 5 4 3 2]
);
packed_kernel!(
    panel_avx2, gemm_packed_avx2, "avx2,fma", 8, 3, f32, row_f32_avx2,
    _mm256_setzero_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps,
    _mm256_storeu_ps,
    [3 2]
);
packed_kernel!(
    panel_avx2_bf16, gemm_packed_avx2_bf16, "avx2,fma", 8, 3, u32, row_bf16_avx2,
    _mm256_setzero_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps,
    _mm256_storeu_ps,
    [3 2]
);

/// Words of the stack buffer holding the bfloat16 rows of `a` for the
/// `vdpbf16ps` kernel (64 KiB: 64 rows of 512 inputs, or one row of 32,768).
const DOT_SCRATCH_WORDS: usize = 16_384;

/// One panel, `R` rows, with `vdpbf16ps`: `a2` holds rows `i..i+R` as
/// bfloat16 pairs (`kp` words each, row `r` at `r * kp`), `panel` the
/// bfloat16 row pairs of one panel; each pair step is two loads of B, `R`
/// broadcasts and `2 R` dot-product instructions of 16 lanes x 2 products.
///
/// # Safety
/// The CPU supports AVX-512F and AVX512-BF16; `a2` holds `R * kp` words,
/// `panel` `kp * PW` words, `c` rows `i..i+R` of length `n`, `j0 < n`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::needless_range_loop)] // index loops mirror the register tile
unsafe fn panel_dot_bf16<const R: usize>(
    kp: usize,
    n: usize,
    a2: &[u32],
    panel: &[u32],
    c: &mut [f32],
    i: usize,
    j0: usize,
) {
    // SAFETY: the whole body runs under this function's `# Safety`
    // contract (debug builds assert the lengths).
    unsafe {
        use std::arch::x86_64::*;
        debug_assert!(a2.len() >= R * kp && panel.len() >= kp * PW && c.len() >= (i + R) * n);
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let ap = a2.as_ptr();
        let bp = panel.as_ptr();
        for q in 0..kp {
            let ahead = bp.wrapping_add(q * PW + PREFETCH_BYTES / 4) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(ahead);
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(q * PW).cast()));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(q * PW + 16).cast()));
            for r in 0..R {
                let av: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*ap.add(r * kp + q) as i32));
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
            }
        }
        let w = PW.min(n - j0);
        for r in 0..R {
            let cp = c.as_mut_ptr().add((i + r) * n + j0);
            if w == PW {
                for h in 0..2 {
                    let ch = cp.add(16 * h);
                    _mm512_storeu_ps(ch, _mm512_add_ps(_mm512_loadu_ps(ch), acc[r][h]));
                }
            } else {
                let mut row = [0.0f32; PW];
                _mm512_storeu_ps(row.as_mut_ptr(), acc[r][0]);
                _mm512_storeu_ps(row.as_mut_ptr().add(16), acc[r][1]);
                for (jj, v) in row.iter().take(w).enumerate() {
                    *cp.add(jj) += v;
                }
            }
        }
    }
}

/// Rows `rows` of `a` (`k` floats each) as bfloat16 pairs into `out`
/// (`k.div_ceil(2)` words per row, an odd `k` padded with 0), rounded to
/// nearest even 16 at a time by `vcvtneps2bf16`.
///
/// # Safety
/// The CPU supports AVX-512F and AVX512-BF16; `a` holds the rows, `out`
/// `rows.len() * k.div_ceil(2)` words.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn rows_to_bf16(a: &[f32], k: usize, rows: std::ops::Range<usize>, out: &mut [u32]) {
    // SAFETY: as in this function's contract.
    unsafe {
        use std::arch::x86_64::*;
        let kp = k.div_ceil(2);
        debug_assert!(a.len() >= rows.end * k && out.len() >= rows.len() * kp);
        for (r, row) in rows.enumerate() {
            let src = &a[row * k..row * k + k];
            let dst = out.as_mut_ptr().add(r * kp) as *mut u16;
            let full = k / 16 * 16;
            for p in (0..full).step_by(16) {
                let h: __m256i =
                    std::mem::transmute(_mm512_cvtneps_pbh(_mm512_loadu_ps(src.as_ptr().add(p))));
                _mm256_storeu_si256(dst.add(p).cast(), h);
            }
            for (p, x) in src.iter().enumerate().skip(full) {
                *dst.add(p) = bf16_bits(*x);
            }
            if k % 2 == 1 {
                *dst.add(k) = 0;
            }
        }
    }
}

/// `c += a b` on bfloat16 panels with `vdpbf16ps` (`a` rounded to bfloat16
/// too, products summed in float32): rows of `a` are converted into a
/// stack buffer as many at a time as it holds (all of a planner's rows),
/// then every panel streams once per group.
///
/// # Safety
/// The CPU supports AVX-512F and AVX512-BF16; `a` holds `m * k` floats,
/// `c` `m * n`, `data` whole panels of `k.div_ceil(2)` pairs covering `n`
/// columns, and `k.div_ceil(2) <= DOT_SCRATCH_WORDS`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn gemm_packed_dot_bf16(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    data: &[u32],
    c: &mut [f32],
) {
    // SAFETY: as in this function's contract; the scratch rows are written
    // by `rows_to_bf16` before the kernels read them.
    unsafe {
        let kp = k.div_ceil(2);
        let mut scratch = std::mem::MaybeUninit::<[u32; DOT_SCRATCH_WORDS]>::uninit();
        let scratch =
            std::slice::from_raw_parts_mut(scratch.as_mut_ptr().cast::<u32>(), DOT_SCRATCH_WORDS);
        let group = (DOT_SCRATCH_WORDS / kp).max(1);
        let mut g0 = 0;
        while g0 < m {
            let g1 = m.min(g0 + group);
            rows_to_bf16(a, k, g0..g1, scratch);
            for_each_row_block(g0..g1, k, data, |pdata, j0, i, left| {
                let r = left.min(12);
                let a2 = &scratch[(i - g0) * kp..];
                match r {
                    12 => panel_dot_bf16::<12>(kp, n, a2, pdata, c, i, j0),
                    11 => panel_dot_bf16::<11>(kp, n, a2, pdata, c, i, j0),
                    10 => panel_dot_bf16::<10>(kp, n, a2, pdata, c, i, j0),
                    9 => panel_dot_bf16::<9>(kp, n, a2, pdata, c, i, j0),
                    8 => panel_dot_bf16::<8>(kp, n, a2, pdata, c, i, j0),
                    7 => panel_dot_bf16::<7>(kp, n, a2, pdata, c, i, j0),
                    6 => panel_dot_bf16::<6>(kp, n, a2, pdata, c, i, j0),
                    5 => panel_dot_bf16::<5>(kp, n, a2, pdata, c, i, j0),
                    4 => panel_dot_bf16::<4>(kp, n, a2, pdata, c, i, j0),
                    3 => panel_dot_bf16::<3>(kp, n, a2, pdata, c, i, j0),
                    2 => panel_dot_bf16::<2>(kp, n, a2, pdata, c, i, j0),
                    _ => panel_dot_bf16::<1>(kp, n, a2, pdata, c, i, j0),
                }
                r
            });
            g0 = g1;
        }
    }
}

/// `c += a b` with `a` row-major `[m, k]`, `b` packed `[k, n]`, `c`
/// row-major `[m, n]`. Cost: `m k n` multiply-adds (float32, whatever
/// [`Weights`] `b` stores) and one pass over `b`'s [`PackedB::bytes`];
/// no allocation. Panics if a slice is shorter than its shape.
pub fn gemm_acc_packed(m: usize, a: &[f32], b: &PackedB, c: &mut [f32]) {
    let (k, n) = (b.k, b.n);
    assert!(
        a.len() >= m * k && c.len() >= m * n,
        "gemm_acc_packed: slices shorter than [{m}x{k}] [{m}x{n}]"
    );
    #[cfg(target_arch = "x86_64")]
    match (kernel_path(), &b.data) {
        // SAFETY: `kernel_path` only returns a path the CPU supports; the
        // lengths are asserted above and the panels are whole.
        (KernelPath::Avx512, Panels::F32(d)) => {
            return unsafe { gemm_packed_avx512(m, k, n, a, d, c) }
        }
        // SAFETY: as above, and the dot-product kernel's CPU feature and
        // scratch bound are checked here.
        (KernelPath::Avx512, Panels::Bf16(d)) => {
            return if bf16_dot() && k.div_ceil(2) <= DOT_SCRATCH_WORDS {
                unsafe { gemm_packed_dot_bf16(m, k, n, a, d, c) }
            } else {
                unsafe { gemm_packed_avx512_bf16(m, k, n, a, d, c) }
            };
        }
        // SAFETY: as above.
        (KernelPath::Avx2, Panels::F32(d)) => return unsafe { gemm_packed_avx2(m, k, n, a, d, c) },
        // SAFETY: as above.
        (KernelPath::Avx2, Panels::Bf16(d)) => {
            return unsafe { gemm_packed_avx2_bf16(m, k, n, a, d, c) }
        }
        (KernelPath::Scalar, _) => {}
    }
    match &b.data {
        Panels::F32(d) => gemm_packed_generic::<f32, 2, false>(m, k, n, a, d, c),
        Panels::Bf16(d) => gemm_packed_generic::<u32, 2, false>(m, k, n, a, d, c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// `c0 + a b` by every packed driver this CPU runs, on `b` stored as
    /// `weights` (the global path is not switched: tests run in parallel),
    /// each with whether it rounds `a` to bfloat16 too.
    fn packed_all_paths(
        m: usize,
        a: &[f32],
        b: &PackedB,
        c0: &[f32],
    ) -> Vec<(&'static str, bool, Vec<f32>)> {
        let (k, n) = (b.k, b.n);
        let bf16 = b.weights() == Weights::Bf16;
        let mut out = vec![];
        let mut c = c0.to_vec();
        gemm_acc_packed(m, a, b, &mut c);
        let dispatched_dot = bf16 && kernel_path() == KernelPath::Avx512 && bf16_dot();
        out.push(("dispatched", dispatched_dot, c));
        let mut c = c0.to_vec();
        match &b.data {
            Panels::F32(d) => gemm_packed_generic::<f32, 2, false>(m, k, n, a, d, &mut c),
            Panels::Bf16(d) => gemm_packed_generic::<u32, 2, false>(m, k, n, a, d, &mut c),
        }
        out.push(("scalar", false, c));
        #[cfg(target_arch = "x86_64")]
        for path in [KernelPath::Avx2, KernelPath::Avx512] {
            if !path.supported() {
                continue;
            }
            let mut c = c0.to_vec();
            // SAFETY: features checked just above; whole shapes.
            unsafe {
                match (path, &b.data) {
                    (KernelPath::Avx2, Panels::F32(d)) => gemm_packed_avx2(m, k, n, a, d, &mut c),
                    (KernelPath::Avx2, Panels::Bf16(d)) => {
                        gemm_packed_avx2_bf16(m, k, n, a, d, &mut c)
                    }
                    (_, Panels::F32(d)) => gemm_packed_avx512(m, k, n, a, d, &mut c),
                    (_, Panels::Bf16(d)) => gemm_packed_avx512_bf16(m, k, n, a, d, &mut c),
                }
            }
            out.push((path.name(), false, c));
        }
        #[cfg(target_arch = "x86_64")]
        if let (true, Panels::Bf16(d)) = (bf16_dot_supported(), &b.data) {
            let mut c = c0.to_vec();
            // SAFETY: features checked just above; whole shapes, k small.
            unsafe { gemm_packed_dot_bf16(m, k, n, a, d, &mut c) };
            out.push(("avx512 vdpbf16ps", true, c));
        }
        out
    }

    /// Every path (full blocks, row tail, column tail, odd k) against a
    /// plain triple loop in f64, on shapes around the block sizes, with
    /// float32 and bfloat16 weights (the bf16 reference multiplies the
    /// rounded weights, and for the `vdpbf16ps` kernel the rounded
    /// activations too: the kernels' only departure is that rounding).
    #[test]
    fn matches_naive_on_odd_shapes() {
        let mut rng = Rng::new(3);
        let mut dot_checked = false;
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
            (70, 517, 40),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| rng.normal() as f32).collect();
            let mut c = c0.clone();
            gemm_acc(m, k, n, &a, &b, &mut c);
            let mut c2 = c0.clone();
            gemm_generic::<8, false>(m, k, n, &a, &b, &mut c2);
            let mut got = vec![
                (Weights::F32, "direct", false, c),
                (Weights::F32, "direct portable", false, c2),
            ];
            for weights in [Weights::F32, Weights::Bf16] {
                let packed = PackedB::with_weights(k, n, &b, weights);
                assert_eq!(packed.weights(), weights);
                for (path, round_a, c) in packed_all_paths(m, &a, &packed, &c0) {
                    got.push((weights, path, round_a, c));
                }
            }
            for (weights, path, round_a, c) in &got {
                dot_checked |= *round_a;
                let bw = |x: f32| match weights {
                    Weights::F32 => x,
                    Weights::Bf16 => bf16_round(x),
                };
                let aw = |x: f32| if *round_a { bf16_round(x) } else { x };
                for i in 0..m {
                    for j in 0..n {
                        let want = c0[i * n + j] as f64
                            + (0..k)
                                .map(|p| aw(a[i * k + p]) as f64 * bw(b[p * n + j]) as f64)
                                .sum::<f64>();
                        assert!(
                            (c[i * n + j] as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "{path} {weights:?} ({m},{k},{n}) at ({i},{j}): {} vs {want}",
                            c[i * n + j]
                        );
                    }
                }
            }
        }
        assert_eq!(
            dot_checked,
            bf16_dot_supported(),
            "the vdpbf16ps kernel ran where it exists"
        );
    }

    /// Round to nearest even, ties and carries included, NaN kept.
    #[test]
    fn bf16_rounding() {
        assert_eq!(bf16_round(1.0), 1.0);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1).
        assert_eq!(bf16_round(1.0 + 1.0 / 256.0), 1.0);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: even is
        // 1 + 2^-6.
        assert_eq!(bf16_round(1.0 + 3.0 / 256.0), 1.0 + 1.0 / 64.0);
        assert_eq!(bf16_round(-2.5), -2.5);
        assert!(bf16_round(f32::NAN).is_nan());
        let mut rng = Rng::new(9);
        for _ in 0..1000 {
            let x = rng.normal() as f32 * 10.0;
            assert!((bf16_round(x) - x).abs() <= x.abs() / 256.0, "{x}");
        }
    }
}
