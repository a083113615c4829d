//! A compiled module: where values live in a frame ([`Loc`]), the kernel
//! interface ([`Kernel`] with its forward and backward views [`Fwd`],
//! [`Bwd`]), the [`Program`] (the kernel list and its interface) and its
//! [`Tape`] of activations. Built by `compile` (start-up); `forward` and
//! `backward` run on the control path and allocate nothing.

use crate::bundle::manifest::TensorSpec;
use std::collections::BTreeMap;
use std::fmt;

/// Where one value lives inside a frame: the value occupies
/// `[batch * off, batch * (off + width))` of the frame, row-major
/// `[rows, width]` from the start of that range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    /// Offset in per-row floats (multiplied by the tape batch).
    pub off: usize,
    /// Floats per row.
    pub width: usize,
}

/// Forward view of one slot's activation frame.
pub struct Fwd<'a> {
    acts: &'a mut [f32],
    batch: usize,
    /// Rows in use (<= batch).
    pub rows: usize,
}

fn range(l: Loc, batch: usize, rows: usize) -> std::ops::Range<usize> {
    let s = batch * l.off;
    s..s + rows * l.width
}

/// Split one buffer into a shared and a mutable region; the regions must not
/// overlap (kernel inputs and outputs are distinct values by construction).
fn split_ro_rw(
    buf: &mut [f32],
    r: std::ops::Range<usize>,
    w: std::ops::Range<usize>,
) -> (&[f32], &mut [f32]) {
    if r.end <= w.start {
        let (a, b) = buf.split_at_mut(w.start);
        (&a[r], &mut b[..w.end - w.start])
    } else {
        assert!(w.end <= r.start, "kernel input and output overlap");
        let (a, b) = buf.split_at_mut(r.start);
        (&b[..r.end - r.start], &mut a[w])
    }
}

impl<'a> Fwd<'a> {
    /// Read a value.
    pub fn get(&self, l: Loc) -> &[f32] {
        &self.acts[range(l, self.batch, self.rows)]
    }
    /// Read `i`, write `o` (distinct values).
    pub fn io(&mut self, i: Loc, o: Loc) -> (&[f32], &mut [f32]) {
        let (b, r) = (self.batch, self.rows);
        split_ro_rw(self.acts, range(i, b, r), range(o, b, r))
    }
    /// Read `a` and `b`, write `o`; `o` comes before or after both inputs
    /// in the frame or between them, all distinct.
    pub fn io2(&mut self, a: Loc, b: Loc, o: Loc) -> (&[f32], &[f32], &mut [f32]) {
        let (bt, r) = (self.batch, self.rows);
        let (ra, rb, ro) = (range(a, bt, r), range(b, bt, r), range(o, bt, r));
        let (lo, hi) = self.acts.split_at_mut(ro.start);
        let (out, hi) = hi.split_at_mut(ro.end - ro.start);
        let (lo, hi): (&[f32], &[f32]) = (lo, hi);
        let pick = |rg: std::ops::Range<usize>| -> &[f32] {
            if rg.end <= ro.start {
                &lo[rg]
            } else {
                assert!(rg.start >= ro.end, "kernel input and output overlap");
                &hi[rg.start - ro.end..rg.end - ro.end]
            }
        };
        let (ga, gb) = (pick(ra), pick(rb));
        (ga, gb, out)
    }
    /// Read `i`, write two adjacent values `o1`, `o2` (`o2` allocated right
    /// after `o1`, e.g. an output and its saved statistics).
    pub fn io_out2(&mut self, i: Loc, o1: Loc, o2: Loc) -> (&[f32], &mut [f32], &mut [f32]) {
        assert_eq!(o2.off, o1.off + o1.width, "io_out2 needs adjacent outputs");
        let (b, r) = (self.batch, self.rows);
        let full = b * o1.off..b * (o2.off + o2.width);
        let (x, out) = split_ro_rw(self.acts, range(i, b, r), full);
        let (p1, p2) = out.split_at_mut(b * o1.width);
        (x, &mut p1[..r * o1.width], &mut p2[..r * o2.width])
    }
    /// Mutable access to a value (for multi-input kernels that copy one
    /// input at a time: use [`Fwd::io`]).
    pub fn get_mut(&mut self, l: Loc) -> &mut [f32] {
        let rg = range(l, self.batch, self.rows);
        &mut self.acts[rg]
    }
}

/// Backward view: the slot's activations (read-only) and the gradient frame.
pub struct Bwd<'a> {
    acts: &'a [f32],
    grads: &'a mut [f32],
    batch: usize,
    /// Rows in use (<= batch).
    pub rows: usize,
}

impl<'a> Bwd<'a> {
    /// Activation of a value (as recorded by the forward pass).
    pub fn act(&self, l: Loc) -> &[f32] {
        &self.acts[range(l, self.batch, self.rows)]
    }
    /// Read the gradient of `o` (a kernel output) and accumulate into the
    /// gradient of `i` (a kernel input), together with the activations.
    pub fn grad_io(&mut self, o: Loc, i: Loc) -> (&[f32], &mut [f32]) {
        let (b, r) = (self.batch, self.rows);
        split_ro_rw(self.grads, range(o, b, r), range(i, b, r))
    }
    /// Activations (shared) and the gradient pair of [`Bwd::grad_io`].
    pub fn split(&mut self, o: Loc, i: Loc) -> (&[f32], &[f32], &mut [f32]) {
        let (b, r) = (self.batch, self.rows);
        let (dy, dx) = split_ro_rw(self.grads, range(o, b, r), range(i, b, r));
        (self.acts, dy, dx)
    }
    /// Row range of a value inside the activation frame (for use with the
    /// slice returned by [`Bwd::split`]).
    pub fn rng(&self, l: Loc) -> std::ops::Range<usize> {
        range(l, self.batch, self.rows)
    }
}

/// One compiled kernel: forward and backward of one op on fixed locations.
pub trait Kernel: Send + Sync + fmt::Debug {
    /// The ONNX op (or fused pattern) name, for summaries.
    fn op(&self) -> &'static str;
    /// Compute outputs from inputs for `f.rows` rows. Allocation-free.
    fn forward(&self, f: &mut Fwd);
    /// Accumulate input gradients from output gradients. Allocation-free.
    fn backward(&self, b: &mut Bwd);
    /// Multiply-adds per row (forward, backward).
    fn flops(&self) -> (u64, u64) {
        (0, 0)
    }
}

/// A compiled module: kernels, their weights, and the frame layout.
#[derive(Debug)]
pub struct Program {
    pub(super) name: String,
    pub(super) inputs: Vec<TensorSpec>,
    pub(super) outputs: Vec<TensorSpec>,
    pub(super) input_locs: Vec<Loc>,
    pub(super) output_locs: Vec<Loc>,
    pub(super) kernels: Vec<Box<dyn Kernel>>,
    /// Floats per row of one frame.
    pub(super) stride: usize,
    /// The frame's locations in order (their blocks tile a frame).
    pub(super) locs: Vec<Loc>,
    pub(super) params: usize,
    pub(super) onnx_ops: BTreeMap<String, usize>,
}

/// Activations of `slots` forward passes of up to `batch` rows each, and one
/// gradient frame. Built once by [`Program::tape`], reused forever.
#[derive(Debug, Clone)]
pub struct Tape {
    acts: Vec<f32>,
    grads: Vec<f32>,
    batch: usize,
    slots: usize,
    stride: usize,
    /// Rows of the last forward at each slot (0 = never run).
    rows: Vec<usize>,
}

impl Tape {
    /// Maximum rows per call.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Number of time slots.
    pub fn slots(&self) -> usize {
        self.slots
    }
    /// Floats held (activations + gradients).
    pub fn floats(&self) -> usize {
        self.acts.len() + self.grads.len()
    }
}

impl Program {
    /// Module name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Graph inputs in order (name, row size).
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }
    /// Graph outputs in order (name, row size).
    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }
    /// Number of weights (floats) held.
    pub fn params(&self) -> usize {
        self.params
    }
    /// ONNX op histogram of the source graph (after constant handling).
    pub fn onnx_ops(&self) -> &BTreeMap<String, usize> {
        &self.onnx_ops
    }
    /// Kernel op names in execution order.
    pub fn kernel_ops(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kernels.iter().map(|k| k.op())
    }
    /// Floats per row per slot of a tape.
    pub fn frame_width(&self) -> usize {
        self.stride
    }

    /// A tape for up to `batch` rows and `slots` time slots. Allocates
    /// `(slots + 1) * batch * frame_width()` floats: start-up only.
    pub fn tape(&self, batch: usize, slots: usize) -> Tape {
        assert!(batch > 0 && slots > 0, "tape needs batch > 0 and slots > 0");
        Tape {
            acts: vec![0.0; slots * batch * self.stride],
            grads: vec![0.0; batch * self.stride],
            batch,
            slots,
            stride: self.stride,
            rows: vec![0; slots],
        }
    }

    fn rows_of(&self, what: &str, bufs: &[&[f32]], specs: &[TensorSpec]) -> usize {
        let rows = bufs.first().map_or(0, |b| b.len() / specs[0].size.max(1));
        self.check_rows(what, bufs.iter().map(|b| b.len()), specs, rows);
        rows
    }

    /// Panics unless there is one buffer per spec (`lens` are their
    /// lengths) and each holds `rows` rows of its spec's size.
    fn check_rows(
        &self,
        what: &str,
        lens: impl ExactSizeIterator<Item = usize>,
        specs: &[TensorSpec],
        rows: usize,
    ) {
        assert_eq!(
            lens.len(),
            specs.len(),
            "{}: expected {} {what} buffers",
            self.name,
            specs.len()
        );
        for (len, s) in lens.zip(specs) {
            assert_eq!(
                len,
                rows * s.size,
                "{}: {what} `{}` must hold {rows} rows of {}",
                self.name,
                s.name,
                s.size
            );
        }
    }

    /// Panics unless `tape` was built for this program and `slot` is one
    /// of its slots (programming errors, not data errors).
    fn check_tape(&self, tape: &Tape, slot: usize) {
        assert_eq!(
            tape.stride, self.stride,
            "{}: tape built for another program",
            self.name
        );
        assert!(
            slot < tape.slots,
            "{}: slot {slot} >= {}",
            self.name,
            tape.slots
        );
    }

    /// Forward pass for `rows` rows (taken from the input lengths, at most
    /// the tape batch), recorded at `slot`. Inputs and outputs are row-major
    /// `[rows, size]` in the order of [`Program::inputs`]/[`Program::outputs`].
    /// Control-path cost: about `flops(rows).0` multiply-adds plus the
    /// element-wise work; no allocation. Panics on buffer sizes that do not
    /// match the interface or a slot/rows outside the tape (programming
    /// errors, not data errors).
    pub fn forward(
        &self,
        tape: &mut Tape,
        slot: usize,
        inputs: &[&[f32]],
        outputs: &mut [&mut [f32]],
    ) {
        self.check_tape(tape, slot);
        let rows = self.rows_of("input", inputs, &self.inputs);
        assert!(
            rows <= tape.batch,
            "{}: {rows} rows > tape batch {}",
            self.name,
            tape.batch
        );
        let fl = tape.batch * self.stride;
        let frame = &mut tape.acts[slot * fl..(slot + 1) * fl];
        let mut f = Fwd {
            acts: frame,
            batch: tape.batch,
            rows,
        };
        for (x, l) in inputs.iter().zip(&self.input_locs) {
            f.get_mut(*l).copy_from_slice(x);
        }
        for k in &self.kernels {
            k.forward(&mut f);
        }
        self.check_rows(
            "output",
            outputs.iter().map(|y| y.len()),
            &self.outputs,
            rows,
        );
        for (y, l) in outputs.iter_mut().zip(&self.output_locs) {
            y.copy_from_slice(f.get(*l));
        }
        tape.rows[slot] = rows;
    }

    /// Vector-Jacobian product of the last forward at `slot`: given
    /// `d_outputs` (dL/d output, row-major like the outputs), overwrite
    /// `d_inputs` with dL/d input. Cost about `flops(rows).1` multiply-adds
    /// plus zeroing the gradient rows it uses; no allocation. Panics if `slot` was
    /// never run forward or the buffer sizes disagree with that forward.
    pub fn backward(
        &self,
        tape: &mut Tape,
        slot: usize,
        d_outputs: &[&[f32]],
        d_inputs: &mut [&mut [f32]],
    ) {
        self.check_tape(tape, slot);
        let rows = tape.rows[slot];
        assert!(
            rows > 0,
            "{}: backward at slot {slot} before any forward",
            self.name
        );
        assert_eq!(
            self.rows_of("d_output", d_outputs, &self.outputs),
            rows,
            "{}: d_outputs rows differ from the forward",
            self.name
        );
        let fl = tape.batch * self.stride;
        let acts = &tape.acts[slot * fl..(slot + 1) * fl];
        // Zero the rows this pass uses (a wide tape of 64 rows run on 15
        // would otherwise clear 4x the floats it touches).
        if rows == tape.batch {
            tape.grads.fill(0.0);
        } else {
            for l in &self.locs {
                tape.grads[range(*l, tape.batch, rows)].fill(0.0);
            }
        }
        let mut b = Bwd {
            acts,
            grads: &mut tape.grads,
            batch: tape.batch,
            rows,
        };
        for (dy, l) in d_outputs.iter().zip(&self.output_locs) {
            let r = range(*l, b.batch, rows);
            b.grads[r]
                .iter_mut()
                .zip(dy.iter())
                .for_each(|(g, d)| *g += d);
        }
        for k in self.kernels.iter().rev() {
            k.backward(&mut b);
        }
        let d_lens = d_inputs.iter().map(|dx| dx.len());
        self.check_rows("d_input", d_lens, &self.inputs, rows);
        for (dx, l) in d_inputs.iter_mut().zip(&self.input_locs) {
            dx.copy_from_slice(&b.grads[range(*l, b.batch, rows)]);
        }
    }

    /// Multiply-adds of one forward and one backward pass over `rows` rows
    /// (matrix products only; element-wise work is not counted).
    pub fn flops(&self, rows: usize) -> (u64, u64) {
        let (f, b) = self
            .kernels
            .iter()
            .map(|k| k.flops())
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
        (f * rows as u64, b * rows as u64)
    }
}
