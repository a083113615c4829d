//! Every supported op, alone and in the models we ship (TD-MPC2-style MLP,
//! SimNorm, Q ensemble, GRU cell): forward == tract, VJP == central finite
//! differences, multi-slot tapes == single-slot runs.

mod common;

use common::*;
use dream_mpc::bundle::onnx_build::{attr_float, attr_int, attr_ints, Act, GraphBuilder};
use dream_mpc::kernels::Program;
use dream_mpc::load::{run_module, REFERENCE_TOLERANCE};
use dream_mpc::rng::Rng;
use dream_mpc_testkit::bundles::{TdmpcModel, TdmpcSpec};

/// Finite-difference tolerance (scaled by the largest gradient entry):
/// f32 forward passes with h = 1e-2 agree to ~1e-4; a wrong derivative is O(1).
const FD_TOL: f32 = 5e-3;

fn rnd(rng: &mut Rng, n: usize, a: f32) -> Vec<f32> {
    (0..n).map(|_| a * rng.normal() as f32).collect()
}

/// Compile, then check against tract and finite differences.
fn check(c: &Case, rows: usize) -> Program {
    let p =
        Program::compile(&c.name, &c.bytes, &c.spec).unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let te = tract_error(c, &p, rows, 1);
    assert!(
        te < REFERENCE_TOLERANCE,
        "{}: forward differs from tract by {te}",
        c.name
    );
    let fe = fd_error(&p, rows, 2, 1e-2);
    assert!(
        fe < FD_TOL,
        "{}: VJP differs from finite differences by {fe}",
        c.name
    );
    p
}

/// A one-input unary graph `x[N, d] -> op -> y`.
fn unary(op: &str, attrs: Vec<tract_onnx::pb::AttributeProto>, d: usize) -> Case {
    let mut g = GraphBuilder::new(op);
    let x = g.input("x", d);
    let y = g.node(op, &[&x], attrs);
    g.output(&y, "y", d);
    case(op, g, 17, &[("x", d)], &[("y", d)])
}

#[test]
fn activations() {
    for (op, attrs) in [
        ("Relu", vec![]),
        ("Tanh", vec![]),
        ("Sigmoid", vec![]),
        ("Elu", vec![attr_float("alpha", 0.7)]),
        ("Mish", vec![]),
        ("Softplus", vec![]),
        ("Softmax", vec![attr_int("axis", -1)]),
    ] {
        check(&unary(op, attrs, 6), 3);
    }
    // Mish and SiLU as exporters write them, from Mul/Tanh/Softplus/Sigmoid.
    let mut g = GraphBuilder::new("mish_ops");
    let x = g.input("x", 5);
    let y = g.act(&x, Act::MishOps, 5);
    g.output(&y, "y", 5);
    let p = check(&case("mish_ops", g, 17, &[("x", 5)], &[("y", 5)]), 3);
    // ... lowered as one fused Mish kernel (one exp instead of three
    // transcendental passes), while the ONNX op counts stay as written.
    let kops: Vec<&str> = p.kernel_ops().collect();
    assert_eq!(kops, ["Mish"], "{kops:?}");
    assert_eq!(p.onnx_ops().get("Softplus"), Some(&1));
    // Not fused when the intermediate is used elsewhere (here an output).
    let mut g = GraphBuilder::new("mish_shared");
    let x = g.input("x", 5);
    let sp = g.node("Softplus", &[&x], vec![]);
    let t = g.node("Tanh", &[&sp], vec![]);
    let y = g.node("Mul", &[&x, &t], vec![]);
    g.output(&y, "y", 5);
    g.output(&sp, "s", 5);
    let p = check(
        &case("mish_shared", g, 17, &[("x", 5)], &[("y", 5), ("s", 5)]),
        3,
    );
    let kops: Vec<&str> = p.kernel_ops().collect();
    assert!(
        kops.contains(&"Softplus") && !kops.contains(&"Mish"),
        "{kops:?}"
    );
    let mut g = GraphBuilder::new("silu");
    let x = g.input("x", 5);
    let s = g.node("Sigmoid", &[&x], vec![]);
    let y = g.node("Mul", &[&x, &s], vec![]);
    g.output(&y, "y", 5);
    check(&case("silu", g, 17, &[("x", 5)], &[("y", 5)]), 3);
}

#[test]
fn gemm_matmul_variants() {
    let mut rng = Rng::new(5);
    // Gemm transB=1 + bias (torch Linear), then Gemm transB=0 with alpha,
    // beta and a [1, out] bias, then MatMul with a constant.
    let mut g = GraphBuilder::new("gemms");
    let x = g.input("x", 4);
    let h = g.linear(
        &x,
        &rnd(&mut rng, 24, 0.5),
        Some(&rnd(&mut rng, 6, 0.5)),
        4,
        6,
    );
    let w = g.constant("w", &[6, 3], &rnd(&mut rng, 18, 0.5));
    let b = g.constant("b", &[1, 3], &rnd(&mut rng, 3, 0.5));
    let h2 = g.node(
        "Gemm",
        &[&h, &w, &b],
        vec![attr_float("alpha", 0.5), attr_float("beta", 2.0)],
    );
    let m = g.constant("m", &[3, 5], &rnd(&mut rng, 15, 0.5));
    let y = g.node("MatMul", &[&h2, &m], vec![]);
    g.output(&y, "y", 5);
    let p = check(&case("gemms", g, 17, &[("x", 4)], &[("y", 5)]), 4);
    assert_eq!(p.flops(1), (4 * 6 + 6 * 3 + 3 * 5, 4 * 6 + 6 * 3 + 3 * 5));
}

#[test]
fn elementwise_binary_and_broadcast() {
    let mut rng = Rng::new(6);
    let mut g = GraphBuilder::new("bin");
    let a = g.input("a", 4);
    let b = g.input("b", 4);
    let s = g.node("Add", &[&a, &b], vec![]);
    let d = g.node("Sub", &[&s, &b], vec![]);
    let m = g.node("Mul", &[&d, &a], vec![]); // a appears twice on one path
    let sq = g.node("Mul", &[&b, &b], vec![]); // same value on both sides
    let row = g.constant("row", &[4], &rnd(&mut rng, 4, 1.0));
    let r1 = g.node("Add", &[&m, &row], vec![]);
    let col = g.constant("row2", &[1, 4], &rnd(&mut rng, 4, 1.0));
    let r2 = g.node("Mul", &[&col, &sq], vec![]);
    let one = g.constant("one", &[], &[1.0]);
    let r3 = g.node("Sub", &[&one, &r2], vec![]); // constant on the left
    let two = g.constant("two", &[1], &[2.0]);
    let r4 = g.node("Div", &[&r3, &two], vec![]);
    let y = g.node("Add", &[&r1, &r4], vec![]);
    g.output(&y, "y", 4);
    check(&case("bin", g, 17, &[("a", 4), ("b", 4)], &[("y", 4)]), 3);
}

#[test]
fn layer_norm_with_and_without_bias() {
    let mut rng = Rng::new(7);
    let mut g = GraphBuilder::new("ln");
    let x = g.input("x", 8);
    let s = g.constant("s", &[8], &rnd(&mut rng, 8, 1.0));
    let b = g.constant("b", &[8], &rnd(&mut rng, 8, 1.0));
    let h = g.node(
        "LayerNormalization",
        &[&x, &s, &b],
        vec![attr_float("epsilon", 1e-5)],
    );
    let s2 = g.constant("s2", &[8], &rnd(&mut rng, 8, 1.0));
    let y = g.node("LayerNormalization", &[&h, &s2], vec![attr_int("axis", 1)]);
    g.output(&y, "y", 8);
    check(&case("ln", g, 17, &[("x", 8)], &[("y", 8)]), 3);
}

#[test]
fn simnorm_grouped_and_folded() {
    // [N, 12] -> [-1, 3, 4] -> softmax -> [-1, 12] (TD-MPC2's export)
    let mut g = GraphBuilder::new("simnorm");
    let x = g.input("x", 12);
    let y = g.act(&x, Act::SimNorm(4), 12);
    g.output(&y, "y", 12);
    let p = check(&case("simnorm", g, 17, &[("x", 12)], &[("y", 12)]), 3);
    // Rows of each group sum to one.
    let xs = vec![(0..24).map(|i| i as f32 * 0.3 - 2.0).collect::<Vec<_>>()];
    let (ys, _) = run_module(&p, 2, &xs, &[vec![0.0; 24]]);
    for grp in ys[0].chunks(4) {
        assert!((grp.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // [N, 12] -> [-1, 4] (batch folded) -> softmax -> [-1, 12]
    let mut g = GraphBuilder::new("folded");
    let x = g.input("x", 12);
    let s1 = g.constant_i64("s1", &[-1, 4]);
    let r = g.node("Reshape", &[&x, &s1], vec![]);
    let sm = g.node("Softmax", &[&r], vec![attr_int("axis", 1)]);
    let s2 = g.constant_i64("s2", &[-1, 12]);
    let y = g.node("Reshape", &[&sm, &s2], vec![]);
    g.output(&y, "y", 12);
    check(&case("folded", g, 17, &[("x", 12)], &[("y", 12)]), 3);
    // Opset 11 softmax (coerced to 2-D at axis 1) over a flat row.
    let mut g = GraphBuilder::new("softmax11");
    let x = g.input("x", 5);
    let y = g.node("Softmax", &[&x], vec![]);
    g.output(&y, "y", 5);
    check(&case("softmax11", g, 11, &[("x", 5)], &[("y", 5)]), 3);
}

#[test]
fn array_ops() {
    let mut g = GraphBuilder::new("arr");
    let a = g.input("a", 3);
    let b = g.input("b", 5);
    let c = g.node("Concat", &[&a, &b, &a], vec![attr_int("axis", 1)]); // 11
    let st = g.constant_i64("st", &[2]);
    let en = g.constant_i64("en", &[-1]);
    let ax = g.constant_i64("ax", &[1]);
    let sl = g.node("Slice", &[&c, &st, &en, &ax], vec![]); // [2, 10): 8
    let sz = g.constant_i64("sz", &[3, 5]);
    let parts = g.node_n("Split", &[&sl, &sz], 2, vec![attr_int("axis", -1)]);
    let t = g.node("Tanh", &[&parts[0]], vec![]);
    let r = g.constant_i64("shape", &[0, 5, 1]);
    let rs = g.node("Reshape", &[&parts[1], &r], vec![]);
    let f = g.node("Flatten", &[&rs], vec![attr_int("axis", 1)]);
    let i = g.node("Identity", &[&f], vec![]);
    let k = g.node(
        "Constant",
        &[],
        vec![tract_onnx::pb::AttributeProto {
            name: "value_floats".into(),
            r#type: 6,
            floats: vec![0.5, -1.0, 2.0, 0.25, 3.0],
            ..Default::default()
        }],
    );
    let m = g.node("Mul", &[&i, &k], vec![]);
    g.output(&t, "t", 3);
    g.output(&m, "m", 5);
    check(
        &case("arr", g, 17, &[("a", 3), ("b", 5)], &[("t", 3), ("m", 5)]),
        3,
    );
    // Opset 11: Split sizes as an attribute, Slice via inputs; 3-D concat.
    let mut g = GraphBuilder::new("arr11");
    let a = g.input("a", 6);
    let parts = g.node_n(
        "Split",
        &[&a],
        3,
        vec![attr_int("axis", 1), attr_ints("split", &[1, 2, 3])],
    );
    let r = g.constant_i64("shape", &[-1, 1, 3]);
    let x3 = g.node("Reshape", &[&parts[2], &r], vec![]);
    let x3b = g.node("Sigmoid", &[&x3], vec![]);
    let c = g.node("Concat", &[&x3, &x3b], vec![attr_int("axis", 2)]); // [N,1,6]
    let r2 = g.constant_i64("flat", &[-1, 6]);
    let y = g.node("Reshape", &[&c, &r2], vec![]);
    g.output(&parts[0], "p0", 1);
    g.output(&y, "y", 6);
    check(
        &case("arr11", g, 11, &[("a", 6)], &[("p0", 1), ("y", 6)]),
        3,
    );
}

/// A GRU cell (PyTorch's equations) from Gemm, Add, Sigmoid, Tanh, Mul,
/// Sub, Slice/Split: h' = (1 - z) * n + z * h.
#[test]
fn gru_cell() {
    let (dx, dh) = (4, 6);
    let mut rng = Rng::new(8);
    let mut g = GraphBuilder::new("gru");
    let x = g.input("x", dx);
    let h = g.input("h", dh);
    let gi = g.linear(
        &x,
        &rnd(&mut rng, 3 * dh * dx, 0.4),
        Some(&rnd(&mut rng, 3 * dh, 0.4)),
        dx,
        3 * dh,
    );
    let gh = g.linear(
        &h,
        &rnd(&mut rng, 3 * dh * dh, 0.4),
        Some(&rnd(&mut rng, 3 * dh, 0.4)),
        dh,
        3 * dh,
    );
    let i = g.node_n("Split", &[&gi], 3, vec![attr_int("axis", 1)]);
    let sz = g.constant_i64("sz", &[dh as i64; 3]);
    let hh = g.node_n("Split", &[&gh, &sz], 3, vec![attr_int("axis", 1)]);
    let ra = g.node("Add", &[&i[0], &hh[0]], vec![]);
    let r = g.node("Sigmoid", &[&ra], vec![]);
    let za = g.node("Add", &[&i[1], &hh[1]], vec![]);
    let z = g.node("Sigmoid", &[&za], vec![]);
    let rh = g.node("Mul", &[&r, &hh[2]], vec![]);
    let na = g.node("Add", &[&i[2], &rh], vec![]);
    let n = g.node("Tanh", &[&na], vec![]);
    let one = g.constant("one", &[1], &[1.0]);
    let omz = g.node("Sub", &[&one, &z], vec![]);
    let a1 = g.node("Mul", &[&omz, &n], vec![]);
    let a2 = g.node("Mul", &[&z, &h], vec![]);
    let y = g.node("Add", &[&a1, &a2], vec![]);
    g.output(&y, "h_next", dh);
    check(
        &case("gru", g, 17, &[("x", dx), ("h", dh)], &[("h_next", dh)]),
        3,
    );
}

/// The TD-MPC2-style modules of `testing.rs` (the ones planners use).
#[test]
fn tdmpc_modules() {
    let mut spec = TdmpcSpec::new(5, 2, 16, 12, 3, 9);
    spec.bins = 7;
    let model = TdmpcModel::random(&spec);
    for m in model.modules() {
        let c = Case {
            name: m.name.clone(),
            spec: m.spec.clone(),
            bytes: m.model.to_bytes(),
        };
        check(&c, 2);
    }
}

/// A tape with several slots keeps each slot's activations: running slots
/// 0..H forward then back-propagating each gives the single-slot answers.
#[test]
fn multi_slot_tape_matches_single_slot() {
    let spec = TdmpcSpec {
        bins: 5,
        ..TdmpcSpec::new(5, 2, 16, 12, 2, 4)
    };
    let model = TdmpcModel::random(&spec);
    let m = model
        .modules()
        .into_iter()
        .find(|m| m.name == "dynamics")
        .unwrap();
    let p = Program::compile(&m.name, &m.model.to_bytes(), &m.spec).unwrap();
    let (rows, slots) = (3, 4);
    let mut rng = Rng::new(1);
    let mut tape = p.tape(rows + 2, slots);
    type Batch = Vec<Vec<f32>>;
    let data: Vec<(Batch, Batch)> = (0..slots)
        .map(|_| {
            (
                rand_inputs(&p, rows, &mut rng),
                rand_cotangents(&p, rows, &mut rng),
            )
        })
        .collect();
    let mut y = vec![0.0; rows * 16];
    for (t, (xs, _)) in data.iter().enumerate() {
        p.forward(&mut tape, t, &[&xs[0], &xs[1]], &mut [&mut y]);
    }
    for (t, (xs, cts)) in data.iter().enumerate().rev() {
        let (mut dz, mut da) = (vec![0.0; rows * 16], vec![0.0; rows * 2]);
        p.backward(&mut tape, t, &[&cts[0]], &mut [&mut dz, &mut da]);
        let (_, want) = run_module(&p, rows, xs, cts);
        assert_eq!(dz, want[0], "slot {t}");
        assert_eq!(da, want[1], "slot {t}");
    }
}
