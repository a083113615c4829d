//! The packed GEMM alone, at a planner's row counts: float32 against
//! bfloat16 weights (widened to float32, and the `vdpbf16ps` kernel where
//! the CPU has it), with the weights hot in L2 (one 512 x 512 matrix) and
//! streamed (40 of them, 42 MB in float32: more than the L3), one core.
//!
//! ```text
//! taskset -c 1 cargo bench -p dream-mpc --bench gemm -- [--rows 5,8,12,15,24] [--calls N]
//! ```
//!
//! Prints microseconds per product and GFLOP/s against the core's measured
//! peak (`dream_mpc_testkit::peak`).

use dream_mpc::kernels::gemm::{
    bf16_dot_supported, gemm_acc_packed, kernel_path, set_bf16_dot, PackedB, Weights,
};
use std::time::Instant;

fn main() {
    let mut rows = vec![5usize, 8, 12, 15, 24];
    let mut calls = 4_000usize;
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--rows" => {
                rows = it
                    .next()
                    .expect("--rows 5,8")
                    .split(',')
                    .map(|r| r.parse().unwrap())
                    .collect()
            }
            "--calls" => calls = it.next().expect("--calls N").parse().unwrap(),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let peak = dream_mpc_testkit::peak::measure();
    println!("{}; kernel path {}", peak.describe(), kernel_path().name());
    let (k, n) = (512usize, 512usize);
    let mut kinds = vec![
        ("f32", Weights::F32, false),
        ("bf16 widened", Weights::Bf16, false),
    ];
    if bf16_dot_supported() {
        kinds.push(("bf16 vdpbf16ps", Weights::Bf16, true));
    }
    println!(
        "{:<16} {:>9} {:>5} {:>10} {:>9} {:>8}",
        "weights", "set MB", "rows", "us/product", "GFLOP/s", "of peak"
    );
    for (name, weights, dot) in kinds {
        if weights == Weights::Bf16 {
            set_bf16_dot(dot).unwrap();
        }
        let peak_gflops = if dot {
            peak.bf16_dot.unwrap()
        } else {
            peak.f32_fma
        };
        for nmat in [1usize, 40] {
            let mats: Vec<PackedB> = (0..nmat)
                .map(|s| {
                    let b: Vec<f32> = (0..k * n)
                        .map(|i| ((i * 7 + s) % 13) as f32 * 0.01 - 0.06)
                        .collect();
                    PackedB::with_weights(k, n, &b, weights)
                })
                .collect();
            let bytes: usize = mats.iter().map(|m| m.bytes()).sum();
            for &m in &rows {
                let a = vec![0.5f32; m * k];
                let mut c = vec![0.0f32; m * n];
                for i in 0..200 {
                    gemm_acc_packed(m, &a, &mats[i % nmat], &mut c);
                }
                let calls = calls / nmat * nmat;
                let t0 = Instant::now();
                for i in 0..calls {
                    gemm_acc_packed(m, &a, &mats[i % nmat], &mut c);
                }
                let dt = t0.elapsed().as_secs_f64();
                std::hint::black_box(&c);
                let gf = 2.0 * (m * k * n * calls) as f64 / dt / 1e9;
                println!(
                    "{name:<16} {:>9.1} {m:>5} {:>10.1} {gf:>9.1} {:>7.1}%",
                    bytes as f64 / 1e6,
                    dt / calls as f64 * 1e6,
                    100.0 * gf / peak_gflops
                );
            }
        }
    }
}
