//! Forward and backward passes allocate nothing once the tapes exist:
//! a counting global allocator (per thread, so the test harness's own
//! threads do not interfere) around H forward steps and H backward steps of
//! every module of a TD-MPC2-style bundle, with float32 and bfloat16
//! weights.

use dream_mpc::kernels::{Program, Weights};
use dream_mpc_testkit::alloc::{allocations, CountingAlloc};
use dream_mpc_testkit::bundles::{TdmpcModel, TdmpcSpec};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

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
            let xs = p
                .inputs()
                .iter()
                .map(|s| vec![0.3; batch * s.size])
                .collect();
            let ys = p
                .outputs()
                .iter()
                .map(|s| vec![0.0; batch * s.size])
                .collect();
            let dxs = p
                .inputs()
                .iter()
                .map(|s| vec![0.0; batch * s.size])
                .collect();
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
                let xr: Vec<&[f32]> =
                    m.xs.iter()
                        .zip(m.p.inputs())
                        .map(|(v, s)| &v[..rows * s.size])
                        .collect();
                let mut yr: Vec<&mut [f32]> =
                    m.ys.iter_mut()
                        .zip(m.p.outputs())
                        .map(|(v, s)| &mut v[..rows * s.size])
                        .collect();
                let before = allocations();
                m.p.forward(&mut m.tape, t, &xr, &mut yr);
                assert_eq!(allocations(), before, "{}: forward allocated", m.p.name());
            }
            for t in (0..slots).rev() {
                let dy: Vec<&[f32]> =
                    m.ys.iter()
                        .zip(m.p.outputs())
                        .map(|(v, s)| &v[..rows * s.size])
                        .collect();
                let mut dx: Vec<&mut [f32]> = m
                    .dxs
                    .iter_mut()
                    .zip(m.p.inputs())
                    .map(|(v, s)| &mut v[..rows * s.size])
                    .collect();
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
