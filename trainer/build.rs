//! Keep `libtorch_cuda` a load-time dependency of the trainer's binaries,
//! tests and benches when the libtorch found by torch-sys has one: the
//! trainer calls nothing in it by name, so the linker's `--as-needed`
//! drops it, and libtorch then reports no CUDA device even on a GPU
//! machine (the CUDA backend registers itself when the library loads).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        let lib = std::path::Path::new(&dir).join("libtorch_cuda.so");
        if lib.exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
}
