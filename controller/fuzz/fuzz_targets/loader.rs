//! Fuzz the module compiler (ONNX bytes) and the manifest parser: any input
//! must give an error or a working program, never a panic or a hang.
#![no_main]

use dream_mpc::bundle::manifest::{Manifest, ModuleSpec, TensorSpec};
use dream_mpc::kernels::Program;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The interface of the random test bundles' `q` module.
    let spec = ModuleSpec {
        file: "q.onnx".into(),
        inputs: vec![TensorSpec { name: "z".into(), size: 8 }, TensorSpec { name: "a".into(), size: 2 }],
        outputs: vec![TensorSpec { name: "q".into(), size: 6 }],
    };
    if let Ok(p) = Program::compile("fuzz", data, &spec) {
        let mut tape = p.tape(2, 1);
        let (z, a) = (vec![0.5f32; 16], vec![0.5f32; 4]);
        let mut q = vec![0.0f32; 12];
        p.forward(&mut tape, 0, &[&z, &a], &mut [&mut q]);
        let (mut dz, mut da) = (vec![0.0f32; 16], vec![0.0f32; 4]);
        p.backward(&mut tape, 0, &[&q], &mut [&mut dz, &mut da]);
    }
    let _ = serde_json::from_slice::<Manifest>(data);
});
