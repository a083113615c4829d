//! Activations, LayerNormalization and Softmax (SimNorm): builders and
//! kernels, forward and backward side by side.

use super::error::CompileError;
use super::lower::Builder;
use super::lower::{Lowering, NodeCtx};
use super::program::{Bwd, Fwd, Kernel, Loc};
use super::simd;

pub(crate) const OPS: &[(&str, Builder)] = &[
    ("Relu", relu),
    ("Tanh", tanh),
    ("Sigmoid", sigmoid),
    ("Elu", elu),
    ("Mish", mish),
    ("Softplus", softplus),
    ("LayerNormalization", layer_norm),
    ("Softmax", softmax),
];

/// Element-wise activation kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActKind {
    Relu,
    Tanh,
    Sigmoid,
    /// ELU with its alpha.
    Elu(f32),
    Mish,
    Softplus,
}

#[inline]
fn sigm(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `ln(1 + e^x)` without overflow.
#[inline]
fn softplus_f(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `(tanh(softplus(x)), sigmoid(x))` from one `exp`: with `e = e^x`,
/// `tanh(ln(1 + e)) = e (e + 2) / (e (e + 2) + 2)`. Above 20 both are 1 in
/// f32 (and `e^2x` would overflow).
#[inline]
fn mish_parts(x: f32) -> (f32, f32) {
    if x > 20.0 {
        return (1.0, 1.0);
    }
    let e = x.exp();
    let n = e * (e + 2.0);
    (n / (n + 2.0), e / (1.0 + e))
}

impl ActKind {
    fn name(self) -> &'static str {
        match self {
            ActKind::Relu => "Relu",
            ActKind::Tanh => "Tanh",
            ActKind::Sigmoid => "Sigmoid",
            ActKind::Elu(_) => "Elu",
            ActKind::Mish => "Mish",
            ActKind::Softplus => "Softplus",
        }
    }
    #[inline]
    fn f(self, x: f32) -> f32 {
        match self {
            ActKind::Relu => x.max(0.0),
            ActKind::Tanh => x.tanh(),
            ActKind::Sigmoid => sigm(x),
            ActKind::Elu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * x.exp_m1()
                }
            }
            ActKind::Mish => x * mish_parts(x).0,
            ActKind::Softplus => softplus_f(x),
        }
    }
    /// dy/dx from the input `x` and output `y`.
    #[inline]
    fn df(self, x: f32, y: f32) -> f32 {
        match self {
            ActKind::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            ActKind::Tanh => 1.0 - y * y,
            ActKind::Sigmoid => y * (1.0 - y),
            ActKind::Elu(a) => {
                if x > 0.0 {
                    1.0
                } else {
                    y + a
                }
            }
            ActKind::Mish => {
                let (t, s) = mish_parts(x);
                t + x * s * (1.0 - t * t)
            }
            ActKind::Softplus => sigm(x),
        }
    }
}

/// `y = f(x)` element-wise.
#[derive(Debug)]
pub struct Activation {
    x: Loc,
    y: Loc,
    kind: ActKind,
}

impl Kernel for Activation {
    fn op(&self) -> &'static str {
        self.kind.name()
    }
    fn forward(&self, f: &mut Fwd) {
        let k = self.kind;
        let (x, y) = f.io(self.x, self.y);
        if k == ActKind::Mish && simd::tuned() {
            return simd::mish_forward(x, y);
        }
        y.iter_mut().zip(x).for_each(|(y, x)| *y = k.f(*x));
    }
    fn backward(&self, b: &mut Bwd) {
        let k = self.kind;
        let (rx, ry) = (b.rng(self.x), b.rng(self.y));
        let (acts, dy, dx) = b.split(self.y, self.x);
        let (x, y) = (&acts[rx], &acts[ry]);
        if simd::tuned() {
            if simd::all_zero(dy) {
                return;
            }
            if k == ActKind::Mish {
                return simd::mish_backward(x, dy, dx);
            }
        }
        for (g, ((d, x), y)) in dx.iter_mut().zip(dy.iter().zip(x).zip(y)) {
            *g += d * k.df(*x, *y);
        }
    }
}

fn activation(lw: &mut Lowering, ctx: &NodeCtx, kind: ActKind) -> Result<(), CompileError> {
    let x = lw.batched(ctx, 0)?;
    let y = lw.out(ctx, 0, x.shape.clone(), x.fold);
    lw.push(Box::new(Activation {
        x: x.loc,
        y: y.loc,
        kind,
    }));
    Ok(())
}

fn relu(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    activation(lw, ctx, ActKind::Relu)
}
fn tanh(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    activation(lw, ctx, ActKind::Tanh)
}
fn sigmoid(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    activation(lw, ctx, ActKind::Sigmoid)
}
fn elu(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    activation(lw, ctx, ActKind::Elu(ctx.attr_float("alpha", 1.0)))
}
fn mish(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    activation(lw, ctx, ActKind::Mish)
}
fn softplus(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    activation(lw, ctx, ActKind::Softplus)
}

/// Layer normalization over groups of `d` consecutive values, with scale
/// and bias; `stats` keeps (mean, 1/std) per group for the backward pass.
#[derive(Debug)]
pub struct LayerNorm {
    x: Loc,
    y: Loc,
    stats: Loc,
    d: usize,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl Kernel for LayerNorm {
    fn op(&self) -> &'static str {
        "LayerNormalization"
    }
    fn forward(&self, f: &mut Fwd) {
        let d = self.d;
        let (x, y, st) = f.io_out2(self.x, self.y, self.stats);
        if simd::tuned() {
            return simd::layer_norm_forward(d, self.eps, &self.gamma, &self.beta, x, y, st);
        }
        for ((xg, yg), s) in x
            .chunks_exact(d)
            .zip(y.chunks_exact_mut(d))
            .zip(st.chunks_exact_mut(2))
        {
            let mean = xg.iter().sum::<f32>() / d as f32;
            let var = xg.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
            let rstd = 1.0 / (var + self.eps).sqrt();
            for (((y, x), g), b) in yg.iter_mut().zip(xg).zip(&self.gamma).zip(&self.beta) {
                *y = (x - mean) * rstd * g + b;
            }
            s[0] = mean;
            s[1] = rstd;
        }
    }
    fn backward(&self, b: &mut Bwd) {
        let d = self.d;
        let (rx, rs) = (b.rng(self.x), b.rng(self.stats));
        let (acts, dy, dx) = b.split(self.y, self.x);
        let (x, st) = (&acts[rx], &acts[rs]);
        if simd::tuned() {
            return simd::layer_norm_backward(d, &self.gamma, x, st, dy, dx);
        }
        let inv_d = 1.0 / d as f32;
        for (((xg, dyg), dxg), s) in x
            .chunks_exact(d)
            .zip(dy.chunks_exact(d))
            .zip(dx.chunks_exact_mut(d))
            .zip(st.chunks_exact(2))
        {
            let (mean, rstd) = (s[0], s[1]);
            // g = dy * gamma; dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
            let (mut sg, mut sgx) = (0.0f32, 0.0f32);
            for ((x, dy), gm) in xg.iter().zip(dyg).zip(&self.gamma) {
                let g = dy * gm;
                sg += g;
                sgx += g * (x - mean) * rstd;
            }
            let (mg, mgx) = (sg * inv_d, sgx * inv_d);
            for (((dx, x), dy), gm) in dxg.iter_mut().zip(xg).zip(dyg).zip(&self.gamma) {
                let xhat = (x - mean) * rstd;
                *dx += rstd * (dy * gm - mg - xhat * mgx);
            }
        }
    }
}

fn layer_norm(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    let x = lw.batched(ctx, 0)?;
    let p = x.axis(ctx, ctx.attr_int("axis", -1))?;
    let d: usize = x.shape[p..].iter().product();
    let gamma = lw.konst(ctx, 1)?.floats();
    let beta = match ctx.input(2) {
        Some(_) => lw.konst(ctx, 2)?.floats(),
        None => vec![0.0; d],
    };
    if gamma.len() != d || beta.len() != d {
        return Err(ctx.unsupported(format!(
            "scale/bias of {}/{} values for normalized size {d} (broadcast scales are not supported)",
            gamma.len(),
            beta.len()
        )));
    }
    if ctx.node.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(ctx.unsupported("Mean/InvStdDev outputs are not supported"));
    }
    let y = lw.out(ctx, 0, x.shape.clone(), x.fold);
    let stats = lw.alloc(2 * x.width() / d);
    lw.push(Box::new(LayerNorm {
        x: x.loc,
        y: y.loc,
        stats,
        d,
        gamma,
        beta,
        eps: ctx.attr_float("epsilon", 1e-5),
    }));
    Ok(())
}

/// Softmax over groups of `d` consecutive values. With a preceding
/// `Reshape [-1, L/g, g]` and following `Reshape [-1, L]` (both free
/// aliases) this is TD-MPC2's SimNorm.
#[derive(Debug)]
pub struct Softmax {
    x: Loc,
    y: Loc,
    d: usize,
}

impl Kernel for Softmax {
    fn op(&self) -> &'static str {
        "Softmax"
    }
    fn forward(&self, f: &mut Fwd) {
        let d = self.d;
        let (x, y) = f.io(self.x, self.y);
        for (xg, yg) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
            let m = xg.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let mut s = 0.0;
            for (y, x) in yg.iter_mut().zip(xg) {
                *y = (x - m).exp();
                s += *y;
            }
            let inv = 1.0 / s;
            yg.iter_mut().for_each(|y| *y *= inv);
        }
    }
    fn backward(&self, b: &mut Bwd) {
        let d = self.d;
        let ry = b.rng(self.y);
        let (acts, dy, dx) = b.split(self.y, self.x);
        let y = &acts[ry];
        for ((yg, dyg), dxg) in y
            .chunks_exact(d)
            .zip(dy.chunks_exact(d))
            .zip(dx.chunks_exact_mut(d))
        {
            let dot: f32 = yg.iter().zip(dyg).map(|(y, d)| y * d).sum();
            for ((g, y), d) in dxg.iter_mut().zip(yg).zip(dyg) {
                *g += y * (d - dot);
            }
        }
    }
}

fn softmax(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    let x = lw.batched(ctx, 0)?;
    let default = if ctx.opset >= 13 { -1 } else { 1 };
    let p = x.axis(ctx, ctx.attr_int("axis", default))?;
    if ctx.opset >= 13 && p + 1 != x.shape.len() {
        return Err(ctx.unsupported(format!(
            "softmax over axis {} of rows {:?} (only the last axis)",
            p,
            x.onnx_tail()
        )));
    }
    // Opset < 13 coerces to 2-D at `axis`: one group over all trailing dims.
    let d = x.shape[p..].iter().product();
    let y = lw.out(ctx, 0, x.shape.clone(), x.fold);
    lw.push(Box::new(Softmax {
        x: x.loc,
        y: y.loc,
        d,
    }));
    Ok(())
}
