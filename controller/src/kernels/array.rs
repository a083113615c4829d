//! Concat, Slice, Split (copy kernels), Reshape, Flatten, Identity
//! (aliases: no kernel) and Constant.

use super::error::CompileError;
use super::lower::Builder;
use super::lower::{tensor_to_konst, BVal, Konst, Lowering, NodeCtx, Value};
use super::program::{Bwd, Fwd, Kernel, Loc};

pub(crate) const OPS: &[(&str, Builder)] = &[
    ("Concat", concat),
    ("Slice", slice),
    ("Split", split),
    ("Reshape", reshape),
    ("Flatten", flatten),
    ("Identity", identity),
    ("Constant", constant),
];

/// Concatenation along a per-row axis: each of the `rows * outer` blocks
/// of the output is the inputs' blocks side by side.
#[derive(Debug)]
pub struct Concat {
    /// (input, block length, offset of its block in the output block).
    ins: Vec<(Loc, usize, usize)>,
    y: Loc,
    outer: usize,
    block: usize,
}

impl Kernel for Concat {
    fn op(&self) -> &'static str {
        "Concat"
    }
    fn forward(&self, f: &mut Fwd) {
        let n = f.rows * self.outer;
        for &(x, len, off) in &self.ins {
            let (xs, ys) = f.io(x, self.y);
            for r in 0..n {
                ys[r * self.block + off..r * self.block + off + len]
                    .copy_from_slice(&xs[r * len..(r + 1) * len]);
            }
        }
    }
    fn backward(&self, b: &mut Bwd) {
        let n = b.rows * self.outer;
        for &(x, len, off) in &self.ins {
            let (dy, dx) = b.grad_io(self.y, x);
            for r in 0..n {
                let src = &dy[r * self.block + off..r * self.block + off + len];
                dx[r * len..(r + 1) * len]
                    .iter_mut()
                    .zip(src)
                    .for_each(|(g, d)| *g += d);
            }
        }
    }
}

/// Take `len` values at `start` out of every block of `block` input values
/// (`rows * outer` blocks): Slice with step 1 and one output of Split.
#[derive(Debug)]
pub struct Take {
    x: Loc,
    y: Loc,
    outer: usize,
    block: usize,
    start: usize,
    len: usize,
    op: &'static str,
}

impl Kernel for Take {
    fn op(&self) -> &'static str {
        self.op
    }
    fn forward(&self, f: &mut Fwd) {
        let n = f.rows * self.outer;
        let (xs, ys) = f.io(self.x, self.y);
        for r in 0..n {
            let s = r * self.block + self.start;
            ys[r * self.len..(r + 1) * self.len].copy_from_slice(&xs[s..s + self.len]);
        }
    }
    fn backward(&self, b: &mut Bwd) {
        let n = b.rows * self.outer;
        let (dy, dx) = b.grad_io(self.y, self.x);
        for r in 0..n {
            let s = r * self.block + self.start;
            dx[s..s + self.len]
                .iter_mut()
                .zip(&dy[r * self.len..(r + 1) * self.len])
                .for_each(|(g, d)| *g += d);
        }
    }
}

fn concat(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    let xs: Vec<BVal> = (0..ctx.n_inputs())
        .map(|k| lw.batched(ctx, k))
        .collect::<Result<_, _>>()?;
    let first = xs
        .first()
        .ok_or_else(|| ctx.unsupported("no inputs"))?
        .clone();
    let p = first.axis(ctx, ctx.attr_int("axis", 1))?;
    let mut total = 0;
    for x in &xs {
        let same = x.fold == first.fold
            && x.shape.len() == first.shape.len()
            && x.shape
                .iter()
                .zip(&first.shape)
                .enumerate()
                .all(|(k, (a, b))| k == p || a == b);
        if !same {
            return Err(ctx.unsupported(format!(
                "inputs of rows {:?} and {:?} differ off the concat axis",
                first.onnx_tail(),
                x.onnx_tail()
            )));
        }
        total += x.shape[p];
    }
    let inner: usize = first.shape[p + 1..].iter().product();
    let outer: usize = first.shape[..p].iter().product();
    let mut shape = first.shape.clone();
    shape[p] = total;
    let y = lw.out(ctx, 0, shape, first.fold);
    let mut off = 0;
    let mut ins = vec![];
    for x in &xs {
        let len = x.shape[p] * inner;
        ins.push((x.loc, len, off));
        off += len;
    }
    lw.push(Box::new(Concat {
        ins,
        y: y.loc,
        outer,
        block: total * inner,
    }));
    Ok(())
}

/// Emit a Take of `[start, start+len)` along per-row axis `p` into output `k`.
fn take(
    lw: &mut Lowering,
    ctx: &NodeCtx,
    k: usize,
    x: &BVal,
    (p, start, len): (usize, usize, usize),
    op: &'static str,
) {
    let inner: usize = x.shape[p + 1..].iter().product();
    let outer: usize = x.shape[..p].iter().product();
    let mut shape = x.shape.clone();
    shape[p] = len;
    let y = lw.out(ctx, k, shape, x.fold);
    lw.push(Box::new(Take {
        x: x.loc,
        y: y.loc,
        outer,
        block: x.shape[p] * inner,
        start: start * inner,
        len: len * inner,
        op,
    }));
}

fn slice(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    let x = lw.batched(ctx, 0)?;
    let (starts, ends, axes, steps) = if ctx.opset >= 10 {
        let starts = lw.ints(ctx, 1)?;
        let ends = lw.ints(ctx, 2)?;
        let axes = match ctx.input(3) {
            Some(_) => lw.ints(ctx, 3)?,
            None => (0..starts.len() as i64).collect(),
        };
        let steps = match ctx.input(4) {
            Some(_) => lw.ints(ctx, 4)?,
            None => vec![1; starts.len()],
        };
        (starts, ends, axes, steps)
    } else {
        let starts = ctx.attr_ints("starts").unwrap_or_default();
        let ends = ctx.attr_ints("ends").unwrap_or_default();
        let axes = ctx
            .attr_ints("axes")
            .unwrap_or_else(|| (0..starts.len() as i64).collect());
        let n = starts.len();
        (starts, ends, axes, vec![1; n])
    };
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(ctx.unsupported("starts/ends/axes/steps of different lengths"));
    }
    // Only one axis may actually cut (others must keep the full range).
    let mut cut: Option<(usize, usize, usize)> = None;
    for k in 0..starts.len() {
        let p = x.axis(ctx, axes[k])?;
        let dim = x.shape[p] as i64;
        if steps[k] != 1 {
            return Err(ctx.unsupported(format!("step {} (only 1)", steps[k])));
        }
        let clampi = |v: i64| {
            if v < 0 {
                (v + dim).clamp(0, dim)
            } else {
                v.clamp(0, dim)
            }
        };
        let (s, e) = (clampi(starts[k]), clampi(ends[k]));
        if e <= s {
            return Err(ctx.unsupported(format!(
                "empty slice [{}, {}) on an axis of {dim}",
                starts[k], ends[k]
            )));
        }
        if s == 0 && e == dim {
            continue;
        }
        if cut.is_some() {
            return Err(ctx.unsupported("slicing more than one axis at once"));
        }
        cut = Some((p, s as usize, (e - s) as usize));
    }
    match cut {
        Some((p, s, len)) => take(lw, ctx, 0, &x, (p, s, len), "Slice"),
        None => lw.define(ctx.output(0), Value::Batched(x)),
    }
    Ok(())
}

fn split(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    let x = lw.batched(ctx, 0)?;
    let p = x.axis(ctx, ctx.attr_int("axis", 0))?;
    let n_out = ctx.node.output.len();
    let dim = x.shape[p];
    let sizes: Vec<i64> = if ctx.opset >= 13 && ctx.input(1).is_some() {
        lw.ints(ctx, 1)?
    } else if let Some(s) = ctx.attr_ints("split") {
        s
    } else {
        if n_out == 0 || dim % n_out != 0 {
            return Err(ctx.unsupported(format!("{n_out} equal parts of {dim}")));
        }
        vec![(dim / n_out) as i64; n_out]
    };
    if sizes.len() != n_out
        || sizes.iter().any(|&s| s <= 0)
        || sizes.iter().sum::<i64>() != dim as i64
    {
        return Err(ctx.unsupported(format!(
            "split sizes {sizes:?} for {n_out} outputs of an axis of {dim}"
        )));
    }
    let mut start = 0;
    for (k, &s) in sizes.iter().enumerate() {
        take(lw, ctx, k, &x, (p, start, s as usize), "Split");
        start += s as usize;
    }
    Ok(())
}

/// Resolve a Reshape target for a batched value; the batch must stay the
/// leading axis (possibly folded with the first per-row dim).
fn reshape_batched(ctx: &NodeCtx, x: &BVal, target: &[i64]) -> Result<BVal, CompileError> {
    let bad = |why: &str| {
        ctx.unsupported(format!(
            "reshape of rows {:?} (fold {}) to {target:?}: {why}",
            x.onnx_tail(),
            x.fold
        ))
    };
    let first = *target.first().ok_or_else(|| bad("empty shape"))?;
    let w = x.width();
    // Resolve the tail (0 copies the input's dim at that ONNX index).
    let in_dims: Vec<usize> = x.onnx_tail().to_vec();
    let mut tail = vec![];
    let mut minus = None;
    for (k, &t) in target.iter().enumerate().skip(1) {
        match t {
            -1 if minus.is_none() => {
                minus = Some(k - 1);
                tail.push(1);
            }
            0 => tail.push(
                *in_dims
                    .get(k - 1)
                    .ok_or_else(|| bad("0 beyond the input rank"))?,
            ),
            t if t > 0 => tail.push(t as usize),
            _ => return Err(bad("bad dim")),
        }
    }
    let known: usize = tail.iter().product();
    if let Some(m) = minus {
        if first == -1 {
            return Err(bad("two -1"));
        }
        // Batch kept as is (first == 0 or the folded batch).
        let lead = if x.fold == 1 { x.shape[0] } else { 1 };
        if known == 0 || !(w / lead).is_multiple_of(known) {
            return Err(bad("sizes do not divide"));
        }
        tail[m] = w / lead / known;
    }
    let known: usize = tail.iter().product();
    match first {
        0 => {
            let mut shape = vec![];
            if x.fold == 1 {
                shape.push(x.shape[0]);
            }
            shape.extend(&tail);
            if shape.iter().product::<usize>() != w {
                return Err(bad("sizes do not match"));
            }
            Ok(BVal {
                loc: x.loc,
                shape,
                fold: x.fold,
            })
        }
        -1 => {
            if known == w {
                Ok(BVal {
                    loc: x.loc,
                    shape: tail,
                    fold: 0,
                })
            } else if known > 0 && w.is_multiple_of(known) {
                let mut shape = vec![w / known];
                shape.extend(&tail);
                Ok(BVal {
                    loc: x.loc,
                    shape,
                    fold: 1,
                })
            } else {
                Err(bad("sizes do not divide"))
            }
        }
        _ => Err(bad(
            "the leading dim must be -1 or 0 (the batch is dynamic)",
        )),
    }
}

fn reshape(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    let target = lw.ints(ctx, 1)?;
    match lw.value(ctx, 0)?.clone() {
        Value::Batched(x) => {
            let y = reshape_batched(ctx, &x, &target)?;
            lw.define(ctx.output(0), Value::Batched(y));
        }
        Value::Const(c) => {
            let n = c.numel();
            let mut dims = vec![];
            let mut minus = None;
            for (k, &t) in target.iter().enumerate() {
                match t {
                    -1 => {
                        minus = Some(k);
                        dims.push(1)
                    }
                    0 => dims.push(
                        *c.dims
                            .get(k)
                            .ok_or_else(|| ctx.unsupported("0 beyond the input rank"))?,
                    ),
                    t if t > 0 => dims.push(t as usize),
                    _ => return Err(ctx.unsupported(format!("bad dim {t}"))),
                }
            }
            let known: usize = dims.iter().product();
            if let Some(m) = minus {
                dims[m] = n.checked_div(known).unwrap_or(0);
            }
            if dims.iter().product::<usize>() != n {
                return Err(ctx.unsupported(format!("constant of {n} values to {target:?}")));
            }
            lw.define(ctx.output(0), Value::Const(Konst { dims, ..c }));
        }
    }
    Ok(())
}

fn flatten(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    let x = lw.batched(ctx, 0)?;
    if ctx.attr_int("axis", 1) != 1 || x.fold != 0 {
        return Err(ctx.unsupported("Flatten other than axis 1 of an unfolded batch"));
    }
    let w = x.width();
    lw.define(
        ctx.output(0),
        Value::Batched(BVal {
            loc: x.loc,
            shape: vec![w],
            fold: 0,
        }),
    );
    Ok(())
}

fn identity(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    let v = lw.value(ctx, 0)?.clone();
    lw.define(ctx.output(0), v);
    Ok(())
}

fn constant(lw: &mut Lowering, ctx: &NodeCtx) -> Result<(), CompileError> {
    let k = if let Some(t) = ctx.attr_tensor("value") {
        tensor_to_konst(ctx.module, t)?
    } else if let Some(a) = ctx.node.attribute.iter().find(|a| a.name == "value_float") {
        if !a.f.is_finite() {
            return Err(CompileError::NonFinite {
                module: ctx.module.into(),
                tensor: ctx.output(0).into(),
                index: 0,
                value: a.f,
            });
        }
        Konst {
            dims: vec![],
            f: vec![a.f],
            i: vec![],
        }
    } else if let Some(a) = ctx.node.attribute.iter().find(|a| a.name == "value_floats") {
        if let Some((ix, v)) = a.floats.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(CompileError::NonFinite {
                module: ctx.module.into(),
                tensor: ctx.output(0).into(),
                index: ix,
                value: *v,
            });
        }
        Konst {
            dims: vec![a.floats.len()],
            f: a.floats.clone(),
            i: vec![],
        }
    } else if let Some(a) = ctx.node.attribute.iter().find(|a| a.name == "value_int") {
        Konst {
            dims: vec![],
            f: vec![],
            i: vec![a.i],
        }
    } else if let Some(a) = ctx.node.attribute.iter().find(|a| a.name == "value_ints") {
        Konst {
            dims: vec![a.ints.len()],
            f: vec![],
            i: a.ints.clone(),
        }
    } else {
        return Err(
            ctx.unsupported("Constant without a value/value_float(s)/value_int(s) attribute")
        );
    };
    lw.define(ctx.output(0), Value::Const(k));
    Ok(())
}
