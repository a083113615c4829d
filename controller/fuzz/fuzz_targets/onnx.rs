//! The ONNX module reader and kernel compiler: any bytes give an error or
//! a program that runs forward and backward; never a panic or a hang.
#![no_main]

use dream_mpc::bundle::manifest::{ModuleSpec, TensorSpec};
use dream_mpc::kernels::Program;
use libfuzzer_sys::fuzz_target;

fn tensor(name: &str, size: usize) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        size,
    }
}

fuzz_target!(|data: &[u8]| {
    // The interface of the random test bundles' `q` module (seeds in
    // controller/tests/fuzz_regressions/onnx are such modules).
    let spec = ModuleSpec {
        file: "q.onnx".into(),
        inputs: vec![tensor("z", 8), tensor("a", 2)],
        outputs: vec![tensor("q", 6)],
    };
    if let Ok(p) = Program::compile("fuzz", data, &spec) {
        let mut tape = p.tape(2, 1);
        let (z, a) = (vec![0.5f32; 16], vec![0.5f32; 4]);
        let mut q = vec![0.0f32; 12];
        p.forward(&mut tape, 0, &[&z, &a], &mut [&mut q]);
        let (mut dz, mut da) = (vec![0.0f32; 16], vec![0.0f32; 4]);
        p.backward(&mut tape, 0, &[&q], &mut [&mut dz, &mut da]);
    }
});
