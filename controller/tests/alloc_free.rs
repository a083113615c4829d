//! Forward and backward passes allocate nothing once the tapes exist:
//! a counting global allocator (per thread, so the test harness's own
//! threads do not interfere) around H forward steps and H backward steps of
//! every module of a TD-MPC2-style bundle, with float32 and bfloat16
//! weights.

use dream_mpc::bundle::manifest::TensorSpec;
use dream_mpc::kernels::{Program, Weights};
use dream_mpc_testkit::alloc::{allocations, CountingAlloc};
use dream_mpc_testkit::bundles::{TdmpcModel, TdmpcSpec};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// One buffer per tensor of `specs`, `rows` rows of `v`.
fn buffers(specs: &[TensorSpec], rows: usize, v: f32) -> Vec<Vec<f32>> {
    specs.iter().map(|s| vec![v; rows * s.size]).collect()
}

/// The first `rows` rows of each buffer of `specs`.
fn rows_of<'a>(bufs: &'a [Vec<f32>], specs: &[TensorSpec], rows: usize) -> Vec<&'a [f32]> {
    bufs.iter()
        .zip(specs)
        .map(|(v, s)| &v[..rows * s.size])
        .collect()
}

/// [`rows_of`], writable.
fn rows_of_mut<'a>(
    bufs: &'a mut [Vec<f32>],
    specs: &[TensorSpec],
    rows: usize,
) -> Vec<&'a mut [f32]> {
    bufs.iter_mut()
        .zip(specs)
        .map(|(v, s)| &mut v[..rows * s.size])
        .collect()
}

#[test]
fn forward_backward_allocate_nothing() {
    passes_allocate_nothing(Weights::F32);
}

/// Bfloat16 weights too: the `vdpbf16ps` kernel converts the activations
/// into a stack buffer, never the heap.
#[test]
fn forward_backward_allocate_nothing_with_bf16_weights() {
    passes_allocate_nothing(Weights::Bf16);
}

fn passes_allocate_nothing(weights: Weights) {
    // Big enough that matrixmultiply takes its packing path (it packs into
    // a stack/thread-local buffer or the heap depending on size).
    let spec = TdmpcSpec::new(11, 3, 64, 128, 5, 3);
    let model = TdmpcModel::random(&spec);
    let (batch, slots) = (9, 4);
    struct M {
        p: Program,
        tape: dream_mpc::kernels::Tape,
        xs: Vec<Vec<f32>>,
        ys: Vec<Vec<f32>>,
        dxs: Vec<Vec<f32>>,
    }
    let mut ms: Vec<M> = model
        .modules()
        .into_iter()
        .map(|m| {
            let p = Program::compile_with(&m.name, &m.model.to_bytes(), &m.spec, weights).unwrap();
            let tape = p.tape(batch, slots);
            let xs = buffers(p.inputs(), batch, 0.3);
            let ys = buffers(p.outputs(), batch, 0.0);
            let dxs = buffers(p.inputs(), batch, 0.0);
            M {
                p,
                tape,
                xs,
                ys,
                dxs,
            }
        })
        .collect();
    let run = |ms: &mut Vec<M>, rows: usize| {
        for m in ms.iter_mut() {
            for t in 0..slots {
                let xr = rows_of(&m.xs, m.p.inputs(), rows);
                let mut yr = rows_of_mut(&mut m.ys, m.p.outputs(), rows);
                let before = allocations();
                m.p.forward(&mut m.tape, t, &xr, &mut yr);
                assert_eq!(allocations(), before, "{}: forward allocated", m.p.name());
            }
            for t in (0..slots).rev() {
                let dy = rows_of(&m.ys, m.p.outputs(), rows);
                let mut dx = rows_of_mut(&mut m.dxs, m.p.inputs(), rows);
                let before = allocations();
                m.p.backward(&mut m.tape, t, &dy, &mut dx);
                assert_eq!(allocations(), before, "{}: backward allocated", m.p.name());
                assert!(dx[0].iter().all(|v| v.is_finite()) && dx[0].iter().any(|v| *v != 0.0));
            }
        }
    };
    run(&mut ms, batch);
    run(&mut ms, 2);
    // The counter itself works: a Vec allocation is seen.
    let before = allocations();
    let v = std::hint::black_box(vec![1u8; 100]);
    assert!(allocations() > before && v.len() == 100);
}
