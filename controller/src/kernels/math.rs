//! Gemm, MatMul, Add, Sub, Mul and Div (by a constant): builders and
//! kernels, forward and backward side by side.

use super::error::CompileError;
use super::gemm::{gemm_acc_packed, PackedB};
use super::lower::Builder;
use super::lower::{BVal, Konst, Lowering, NodeCtx, Value};
use super::program::{Bwd, Fwd, Kernel, Loc};
use nalgebra::DMatrix;

pub(crate) const OPS: &[(&str, Builder)] = &[
    ("Gemm", gemm),
    ("MatMul", matmul),
    ("Add", add),
    ("Sub", sub),
    ("Mul", mul),
    ("Div", div),
];

/// `y = x W^T + b` over the last axis (both passes through the
/// allocation-free [`gemm_acc`]) (`x` has `cols = rows * width/in`
/// rows of `in`). `w` is `[out, in]`, `wt` its transpose (kept so that both
/// passes are one plain gemm).
#[derive(Debug)]
pub struct Linear {
    x: Loc,
    y: Loc,
    d_in: usize,
    d_out: usize,
    /// `W^T` as `[in, out]`, packed for the forward gemm.
    w: PackedB,
    /// `W` as `[out, in]`, packed for the backward gemm.
    wt: PackedB,
    bias: Vec<f32>,
    op: &'static str,
}

impl Kernel for Linear {
    fn op(&self) -> &'static str {
        self.op
    }
    /// One gemm: `rows * width/in * in * out` multiply-adds.
    fn forward(&self, f: &mut Fwd) {
        let cols = f.rows * self.x.width / self.d_in;
        let (xs, ys) = f.io(self.x, self.y);
        for c in ys.chunks_exact_mut(self.d_out) {
            c.copy_from_slice(&self.bias);
        }
        // Column-major [out, in] storage is row-major [in, out]: y += x W^T.
        gemm_acc_packed(cols, xs, &self.w, ys);
    }
    /// One gemm: `dx += dy W`; nothing when `dy` is all zero (e.g. the Q
    /// heads a two-heads value does not read), which costs one comparison
    /// when it is not.
    fn backward(&self, b: &mut Bwd) {
        let cols = b.rows * self.x.width / self.d_in;
        let (dy, dx) = b.grad_io(self.y, self.x);
        if super::simd::tuned() && super::simd::all_zero(dy) {
            return;
        }
        gemm_acc_packed(cols, dy, &self.wt, dx);
    }
    fn flops(&self) -> (u64, u64) {
        let f = (self.x.width * self.d_out) as u64;
        (f, f)
    }
}

fn linear(
    lw: &mut Lowering,
    ctx: &NodeCtx,
    x: BVal,
    w: DMatrix<f32>,
    bias: Vec<f32>,
    op: &'static str,
) -> Result<(), CompileError> {
    let (d_out, d_in) = w.shape();
    if d_out == 0 || d_in == 0 {
        return Err(ctx.unsupported(format!("empty weight matrix [{d_out}, {d_in}]")));
    }
    if x.shape.last() != Some(&d_in) {
        return Err(ctx.unsupported(format!(
            "input rows have shape {:?}, weight expects last dim {d_in}",
            x.onnx_tail()
        )));
    }
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("rank >= 1") = d_out;
    let y = lw.out(ctx, 0, shape, x.fold);
    lw.push(Box::new(Linear {
        x: x.loc,
        y: y.loc,
        d_in,
        d_out,
        // Column-major [out, in] storage is row-major [in, out], and the
        // transpose's is row-major [out, in].
        wt: PackedB::with_weights(d_out, d_in, w.transpose().as_slice(), lw.weights),
        w: PackedB::with_weights(d_in, d_out, w.as_slice(), lw.weights),
        bias,
        op,
    }));
    Ok(())
}

fn gemm(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    let x = lw.batched(ctx, 0)?;
    let b = lw.konst(ctx, 1)?;
    let alpha = ctx.attr_float("alpha", 1.0);
    let beta = ctx.attr_float("beta", 1.0);
    if ctx.attr_int("transA", 0) != 0 {
        return Err(ctx.unsupported("transA = 1 (the batch must stay the leading axis)"));
    }
    if b.dims.len() != 2 || b.f.is_empty() {
        return Err(ctx.unsupported(format!("B must be a float matrix, found dims {:?}", b.dims)));
    }
    let w = if ctx.attr_int("transB", 0) != 0 {
        DMatrix::from_row_slice(b.dims[0], b.dims[1], &b.f)
    } else {
        DMatrix::from_column_slice(b.dims[1], b.dims[0], &b.f)
    } * alpha;
    let d_out = w.nrows();
    let bias = match ctx.input(2) {
        None => vec![0.0; d_out],
        Some(_) => {
            let c = lw.konst(ctx, 2)?;
            let cf = c.floats();
            let ok_shape = c.dims.len() <= 1 || (c.dims.len() == 2 && c.dims[0] == 1);
            if !ok_shape || (cf.len() != d_out && cf.len() != 1) {
                return Err(ctx.unsupported(format!(
                    "bias C of dims {:?} does not broadcast to [N, {d_out}]",
                    c.dims
                )));
            }
            (0..d_out)
                .map(|j| beta * cf[if cf.len() == 1 { 0 } else { j }])
                .collect()
        }
    };
    linear(lw, ctx, x, w, bias, "Gemm")
}

fn matmul(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    let x = lw.batched(ctx, 0)?;
    let b = lw.konst(ctx, 1)?;
    if b.dims.len() != 2 || b.f.is_empty() {
        return Err(ctx.unsupported(format!(
            "B must be a constant float matrix, found dims {:?}",
            b.dims
        )));
    }
    // Row-major [in, out] is column-major [out, in]: W itself.
    let w = DMatrix::from_column_slice(b.dims[1], b.dims[0], &b.f);
    let d_out = w.nrows();
    linear(lw, ctx, x, w, vec![0.0; d_out], "MatMul")
}

/// Element-wise binary kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinKind {
    Add,
    Sub,
    Mul,
}

impl BinKind {
    fn name(self) -> &'static str {
        match self {
            BinKind::Add => "Add",
            BinKind::Sub => "Sub",
            BinKind::Mul => "Mul",
        }
    }
}

/// `y = a (op) b` for two batched values of the same shape.
#[derive(Debug)]
pub struct Binary {
    a: Loc,
    b: Loc,
    y: Loc,
    kind: BinKind,
}

impl Kernel for Binary {
    fn op(&self) -> &'static str {
        self.kind.name()
    }
    fn forward(&self, f: &mut Fwd) {
        let (a, b, y) = f.io2(self.a, self.b, self.y);
        let it = y.iter_mut().zip(a.iter().zip(b));
        match self.kind {
            BinKind::Add => it.for_each(|(y, (a, b))| *y = a + b),
            BinKind::Sub => it.for_each(|(y, (a, b))| *y = a - b),
            BinKind::Mul => it.for_each(|(y, (a, b))| *y = a * b),
        }
    }
    fn backward(&self, bw: &mut Bwd) {
        let (ra, rb) = (bw.rng(self.a), bw.rng(self.b));
        // da += dy * (1 | b)
        let (acts, dy, da) = bw.split(self.y, self.a);
        match self.kind {
            BinKind::Add | BinKind::Sub => da.iter_mut().zip(dy).for_each(|(g, d)| *g += d),
            BinKind::Mul => da
                .iter_mut()
                .zip(dy.iter().zip(&acts[rb]))
                .for_each(|(g, (d, b))| *g += d * b),
        }
        // db += dy * (1 | -1 | a)   (a second pass: a and b may be one value)
        let (acts, dy, db) = bw.split(self.y, self.b);
        match self.kind {
            BinKind::Add => db.iter_mut().zip(dy).for_each(|(g, d)| *g += d),
            BinKind::Sub => db.iter_mut().zip(dy).for_each(|(g, d)| *g -= d),
            BinKind::Mul => db
                .iter_mut()
                .zip(dy.iter().zip(&acts[ra]))
                .for_each(|(g, (d, a))| *g += d * a),
        }
    }
}

/// `y = x (op) c` or `y = c (op) x` with a constant `c` broadcast to one row.
#[derive(Debug)]
pub struct BinaryConst {
    x: Loc,
    y: Loc,
    c: Vec<f32>,
    kind: BinKind,
    const_left: bool,
}

impl Kernel for BinaryConst {
    fn op(&self) -> &'static str {
        self.kind.name()
    }
    fn forward(&self, f: &mut Fwd) {
        let w = self.c.len();
        let (x, y) = f.io(self.x, self.y);
        for (yr, xr) in y.chunks_exact_mut(w).zip(x.chunks_exact(w)) {
            let it = yr.iter_mut().zip(xr.iter().zip(&self.c));
            match (self.kind, self.const_left) {
                (BinKind::Add, _) => it.for_each(|(y, (x, c))| *y = x + c),
                (BinKind::Sub, false) => it.for_each(|(y, (x, c))| *y = x - c),
                (BinKind::Sub, true) => it.for_each(|(y, (x, c))| *y = c - x),
                (BinKind::Mul, _) => it.for_each(|(y, (x, c))| *y = x * c),
            }
        }
    }
    fn backward(&self, b: &mut Bwd) {
        let w = self.c.len();
        let (dy, dx) = b.grad_io(self.y, self.x);
        for (gr, dr) in dx.chunks_exact_mut(w).zip(dy.chunks_exact(w)) {
            let it = gr.iter_mut().zip(dr.iter().zip(&self.c));
            match (self.kind, self.const_left) {
                (BinKind::Add, _) | (BinKind::Sub, false) => it.for_each(|(g, (d, _))| *g += d),
                (BinKind::Sub, true) => it.for_each(|(g, (d, _))| *g -= d),
                (BinKind::Mul, _) => it.for_each(|(g, (d, c))| *g += d * c),
            }
        }
    }
}

/// Broadcast constant `c` (numpy rules, aligned right against the ONNX
/// tensor of `x`) to one row of `x`: `x.width()` values.
pub(crate) fn broadcast_row(ctx: &NodeCtx, c: &Konst, x: &BVal) -> Result<Vec<f32>, CompileError> {
    let tail = x.onnx_tail();
    let mut cd: &[usize] = &c.dims;
    let bad = || {
        ctx.unsupported(format!(
            "constant of dims {:?} does not broadcast over a batched tensor with rows {:?}",
            c.dims, tail
        ))
    };
    if cd.len() == tail.len() + 1 {
        if cd[0] != 1 {
            return Err(bad());
        }
        cd = &cd[1..];
    }
    if cd.len() > tail.len() {
        return Err(bad());
    }
    let lead = x.shape.len() - cd.len();
    for (k, &d) in cd.iter().enumerate() {
        if d != 1 && d != x.shape[lead + k] {
            return Err(bad());
        }
    }
    let cf = c.floats();
    let mut out = vec![0.0; x.width()];
    let mut idx = vec![0usize; x.shape.len()];
    for o in out.iter_mut() {
        let mut ci = 0;
        for (k, &d) in cd.iter().enumerate() {
            ci = ci * d + if d == 1 { 0 } else { idx[lead + k] };
        }
        *o = cf[ci];
        for a in (0..idx.len()).rev() {
            idx[a] += 1;
            if idx[a] < x.shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    Ok(out)
}

fn binary(
    lw: &mut Lowering,
    ctx: &NodeCtx,
    kind: BinKind,
    invert_const: bool,
) -> Result<(), CompileError> {
    let (va, vb) = (lw.value(ctx, 0)?.clone(), lw.value(ctx, 1)?.clone());
    match (va, vb) {
        (Value::Batched(a), Value::Batched(b)) => {
            if invert_const {
                return Err(ctx.unsupported("division by a batched tensor"));
            }
            if a.shape != b.shape || a.fold != b.fold {
                return Err(ctx.unsupported(format!(
                    "broadcast between two batched tensors of rows {:?} and {:?}",
                    a.onnx_tail(),
                    b.onnx_tail()
                )));
            }
            let y = lw.out(ctx, 0, a.shape.clone(), a.fold);
            lw.push(Box::new(Binary {
                a: a.loc,
                b: b.loc,
                y: y.loc,
                kind,
            }));
        }
        (Value::Batched(x), Value::Const(c)) | (Value::Const(c), Value::Batched(x)) => {
            let const_left = matches!(lw.value(ctx, 0)?, Value::Const(_));
            if invert_const && const_left {
                return Err(ctx.unsupported("a constant divided by a batched tensor"));
            }
            let mut row = broadcast_row(ctx, &c, &x)?;
            if invert_const {
                if let Some(z) = row.iter().find(|v| **v == 0.0) {
                    return Err(ctx.unsupported(format!("division by a constant containing {z}")));
                }
                row.iter_mut().for_each(|v| *v = 1.0 / *v);
            }
            let y = lw.out(ctx, 0, x.shape.clone(), x.fold);
            lw.push(Box::new(BinaryConst {
                x: x.loc,
                y: y.loc,
                c: row,
                kind,
                const_left,
            }));
        }
        (Value::Const(_), Value::Const(_)) => {
            return Err(ctx.unsupported("constant-only arithmetic (fold it at export)"));
        }
    }
    Ok(())
}

fn add(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    binary(lw, ctx, BinKind::Add, false)
}
fn sub(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    binary(lw, ctx, BinKind::Sub, false)
}
fn mul(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    binary(lw, ctx, BinKind::Mul, false)
}
/// Only `x / c` with a constant `c` (compiled as `x * (1/c)`).
fn div(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    binary(lw, ctx, BinKind::Mul, true)
}
