//! Reading a TD-MPC2 checkpoint into a flat state dict of f32 tensors.
//!
//! A `.pt` checkpoint is a Python pickle, which neither tch
//! (`Tensor::load_multi` reads TorchScript archives, `read_npz` numpy
//! archives) nor Rust can read safely, so one small Python step with the
//! project's torch (`trainer/python/tdmpc2_to_safetensors.py`, embedded in
//! this binary, `weights_only=True`) rewrites the tensors as a safetensors
//! file, which is parsed here. A `.safetensors` input is read directly.
//! Import-time cost only; nothing here is on a control path.

use super::error::ImportError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The converter script, run with `python -c`.
const CONVERTER: &str = include_str!("../../python/tdmpc2_to_safetensors.py");

/// One tensor of the checkpoint, row-major f32.
#[derive(Clone, Debug, PartialEq)]
pub struct RawTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The checkpoint's `model` state dict.
#[derive(Clone, Debug, Default)]
pub struct StateDict {
    /// Tensor entries by key.
    pub tensors: BTreeMap<String, RawTensor>,
    /// Entries that are not tensors with data (tensordict's `__batch_size`
    /// and `__device`, meta-device templates), by key.
    pub skipped: Vec<String>,
}

/// Which Python runs the converter: `explicit`, else `$DREAM_MPC_PYTHON`,
/// else `$VIRTUAL_ENV/bin/python3` (set by `scripts/env.sh`), else
/// `python3` from PATH.
pub fn python(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("DREAM_MPC_PYTHON") {
        return PathBuf::from(p);
    }
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        let p = Path::new(&v).join("bin/python3");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("python3")
}

/// Read `path`: a `.safetensors` file directly, anything else as a torch
/// checkpoint through the Python converter (`python`, see [`python`]).
/// The temporary safetensors file is removed before returning.
pub fn read_checkpoint(path: &Path, python_exe: Option<&Path>) -> Result<StateDict, ImportError> {
    if path.extension().is_some_and(|e| e == "safetensors") {
        return read_safetensors(path);
    }
    if !path.is_file() {
        return Err(ImportError::Checkpoint(format!(
            "{}: no such file",
            path.display()
        )));
    }
    let tmp = std::env::temp_dir().join(format!(
        "dream-mpc-import-{}-{}.safetensors",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let py = python(python_exe);
    let out = Command::new(&py)
        .arg("-c")
        .arg(CONVERTER)
        .arg(path)
        .arg(&tmp)
        .output()
        .map_err(|e| {
            ImportError::Checkpoint(format!(
                "cannot run {} to read the pickle: {e} (set --python or DREAM_MPC_PYTHON, or `source scripts/env.sh`)",
                py.display()
            ))
        })?;
    let result = if out.status.success() {
        read_safetensors(&tmp)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(ImportError::Checkpoint(format!(
            "{}: torch.load failed ({}): {last}",
            path.display(),
            py.display()
        )))
    };
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Parse a safetensors file (8-byte little-endian header length, JSON
/// header, data). Only F32 tensors are accepted (the converter writes
/// nothing else); `__metadata__.skipped` lists the non-tensor entries.
pub fn read_safetensors(path: &Path) -> Result<StateDict, ImportError> {
    let bad = |m: String| ImportError::Checkpoint(format!("{}: {m}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    if bytes.len() < 8 {
        return Err(bad("shorter than a safetensors header".into()));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let body = 8usize
        .checked_add(n)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad(format!("header length {n} beyond the file")))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..body]).map_err(|e| bad(format!("header: {e}")))?;
    let data = &bytes[body..];
    let mut sd = StateDict::default();
    for (key, v) in &header {
        if key == "__metadata__" {
            if let Some(s) = v.get("skipped").and_then(|s| s.as_str()) {
                sd.skipped =
                    serde_json::from_str(s).map_err(|e| bad(format!("metadata `skipped`: {e}")))?;
            }
            continue;
        }
        let dtype = v.get("dtype").and_then(|d| d.as_str()).unwrap_or("?");
        if dtype != "F32" {
            return Err(bad(format!("`{key}`: dtype {dtype} (expected F32)")));
        }
        let shape: Vec<usize> = v
            .get("shape")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .ok_or_else(|| bad(format!("`{key}`: no shape")))?;
        let offs: [usize; 2] = v
            .get("data_offsets")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .ok_or_else(|| bad(format!("`{key}`: no data_offsets")))?;
        let numel = shape
            .iter()
            .try_fold(1usize, |p, &d| p.checked_mul(d))
            .ok_or_else(|| bad(format!("`{key}`: shape {shape:?} overflows")))?;
        if offs[0] > offs[1] || offs[1] > data.len() || offs[1] - offs[0] != numel * 4 {
            return Err(bad(format!(
                "`{key}`: data {offs:?} does not hold shape {shape:?}"
            )));
        }
        let values = data[offs[0]..offs[1]]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        sd.tensors.insert(
            key.clone(),
            RawTensor {
                shape,
                data: values,
            },
        );
    }
    Ok(sd)
}
