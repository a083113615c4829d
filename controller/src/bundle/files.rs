//! Bundle files: sha256 checksums, reading a bundle's manifest with every
//! check the format defines (schema, sizes, checksums), and the one bundle
//! writer. Start-up and export cost only; nothing here runs on the control
//! path.

use super::confine::{quote, read_confined, Limits};
use super::error::BundleError;
use super::manifest::{LatentSpec, Manifest, ModuleSpec, References, FORMAT, VERSION};
use super::onnx_build::OnnxModel;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Lowercase hex sha256 of `bytes` (the form `checksums` holds).
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> BundleError {
    BundleError::Io {
        path: path.to_path_buf(),
        message: format!("cannot {what}: {e}"),
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    std::fs::write(path, bytes).map_err(|e| io_error(path, "write", e))
}

/// Read `file` (relative to `dir`, confined to it and capped at
/// `limits.file_bytes`: see [`super::confine`]) and check it against the
/// manifest's checksum; the bytes are returned only if they match.
pub fn read_verified(
    dir: &Path,
    m: &Manifest,
    file: &str,
    limits: &Limits,
) -> Result<Vec<u8>, BundleError> {
    let expected = m
        .checksums
        .get(file)
        .ok_or_else(|| BundleError::MissingChecksum { file: quote(file) })?;
    let bytes = read_confined(dir, file, limits.file_bytes)?;
    let actual = sha256_hex(&bytes);
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(BundleError::ChecksumMismatch {
            file: quote(file),
            expected: expected.clone(),
            actual,
        });
    }
    Ok(bytes)
}

/// [`read_manifest_with`] under the default [`Limits`].
pub fn read_manifest(dir: &Path) -> Result<Manifest, BundleError> {
    read_manifest_with(dir, &Limits::default())
}

/// Parse `dir/manifest.json` (confined and capped like every bundle file,
/// at `limits.manifest_bytes`), check it ([`parse_manifest`]) and verify
/// the checksum of every file it lists (each confined to the folder and
/// capped at `limits.file_bytes`). The ONNX files are not parsed here.
pub fn read_manifest_with(dir: &Path, limits: &Limits) -> Result<Manifest, BundleError> {
    let mpath = dir.join("manifest.json");
    let text = read_confined(dir, "manifest.json", limits.manifest_bytes)?;
    let manifest = parse_manifest(&mpath, &text)?;
    for file in manifest.checksums.keys() {
        read_verified(dir, &manifest, file, limits)?;
    }
    if let Some(r) = &manifest.references {
        read_verified(dir, &manifest, r, limits)?;
    }
    Ok(manifest)
}

/// Parse and check a manifest's bytes (format, version, sizes, bounds,
/// normalization, observation range, the standard modules' interfaces,
/// and that every file it names is a safe relative name with a checksum);
/// `path` only labels errors. Reads no file: the entry point of the
/// manifest fuzz target.
pub fn parse_manifest(path: &Path, bytes: &[u8]) -> Result<Manifest, BundleError> {
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| BundleError::Manifest {
        path: path.to_path_buf(),
        message: quote(&e.to_string()),
    })?;
    check_manifest(path, &manifest)?;
    for file in manifest
        .checksums
        .keys()
        .chain(manifest.references.iter())
        .chain(manifest.modules.values().map(|s| &s.file))
    {
        super::confine::check_relative(file)?;
    }
    for spec in manifest.modules.values() {
        if !manifest.checksums.contains_key(&spec.file) {
            return Err(BundleError::MissingChecksum {
                file: quote(&spec.file),
            });
        }
    }
    Ok(manifest)
}

/// Parse a references file's bytes (no checks against a bundle; see
/// `Bundle::verify_references`). The entry point of the references fuzz
/// target.
pub fn parse_references(file: &str, bytes: &[u8]) -> Result<References, BundleError> {
    serde_json::from_slice(bytes).map_err(|e| BundleError::References {
        message: format!("{}: {}", quote(file), quote(&e.to_string())),
    })
}

/// Read and parse the references file the manifest names (checksum
/// verified, confined and capped at `limits.file_bytes`).
pub fn read_references(
    dir: &Path,
    m: &Manifest,
    limits: &Limits,
) -> Result<References, BundleError> {
    let file = m
        .references
        .as_ref()
        .ok_or_else(|| BundleError::References {
            message: "the manifest lists no references file".into(),
        })?;
    let bytes = read_verified(dir, m, file, limits)?;
    parse_references(file, &bytes)
}

fn check_manifest(path: &Path, m: &Manifest) -> Result<(), BundleError> {
    let bad = |message: String| BundleError::Manifest {
        path: path.into(),
        message,
    };
    // Two per-element vectors (`names`, lengths `lens`) of a `what` of `size`.
    let sized = |what: &str, size: usize, names: &str, lens: (usize, usize)| {
        if lens.0 != size || lens.1 != size {
            return Err(bad(format!(
                "{what} size {size} but {names} have {}/{} values",
                lens.0, lens.1
            )));
        }
        Ok(())
    };
    if m.format != FORMAT {
        return Err(bad(format!("format `{}` (expected `{FORMAT}`)", m.format)));
    }
    if m.version != VERSION {
        return Err(bad(format!(
            "version {} (this controller reads {VERSION})",
            m.version
        )));
    }
    if let LatentSpec::Rssm { .. } = m.latent {
        return Err(bad(
            "latent kind `rssm` (recurrent bundles) is not supported by this controller".into(),
        ));
    }
    let o = &m.observation;
    sized(
        "observation",
        o.size,
        "mean/std",
        (o.mean.len(), o.std.len()),
    )?;
    if let Some((i, s)) = o
        .std
        .iter()
        .enumerate()
        .find(|(_, s)| !(s.is_finite() && **s > 0.0))
    {
        return Err(bad(format!(
            "observation.std[{i}] = {s} (must be finite and > 0)"
        )));
    }
    if let Some((i, s)) = o.mean.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(bad(format!("observation.mean[{i}] = {s}")));
    }
    if let Some(r) = &o.range {
        let lens = (r.low.len(), r.high.len());
        sized("observation", o.size, "range.low/high", lens)?;
        for i in 0..o.size {
            let (lo, hi) = (r.low[i], r.high[i]);
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return Err(bad(format!(
                    "observation.range element {i}: low {lo} high {hi} (must be finite, low <= high)"
                )));
            }
        }
    }
    check_normalization(o).map_err(bad)?;
    check_decoding("reward_decoding", &m.reward_decoding).map_err(bad)?;
    check_decoding("value_decoding", &m.value_decoding).map_err(bad)?;
    let a = &m.action;
    sized("action", a.size, "low/high", (a.low.len(), a.high.len()))?;
    for i in 0..a.size {
        if !(a.low[i].is_finite() && a.high[i].is_finite() && a.low[i] < a.high[i]) {
            return Err(bad(format!(
                "action bound {i}: low {} high {}",
                a.low[i], a.high[i]
            )));
        }
    }
    if m.action_repeat == 0 || m.action_repeat > 1000 {
        return Err(bad(format!(
            "action_repeat {} (must be in 1..=1000)",
            m.action_repeat
        )));
    }
    if !(m.discount.is_finite() && m.discount > 0.0 && m.discount <= 1.0) {
        return Err(bad(format!("discount {} (must be in (0, 1])", m.discount)));
    }
    if m.modules.is_empty() {
        return Err(bad("no modules".into()));
    }
    check_roles(path, m)
}

/// Largest normalized observation `|(x - mean) / std|` a bundle may
/// produce at the ends of its recorded range. For statistics of the data
/// the range was recorded from, `|x - mean| <= std sqrt(n - 1)`
/// (Samuelson's inequality), so a real bundle reaches 1e8 only past 1e16
/// samples; beyond it the std is broken (e.g. 1e-38) and the encoder's
/// input overflows within a layer or two.
pub const NORMALIZED_MAX: f32 = 1e8;

/// Largest decoded reward or value magnitude a two-hot decoding may
/// produce (`symexp` of its largest bin, about `symlog` 69): the planner
/// sums a horizon of rewards and the Q heads, which needs headroom below
/// f32's 3.4e38. TD-MPC2 decodes within symexp(10) = 22026.
pub const DECODED_MAX: f32 = 1e30;

/// The observation normalization yields finite inputs: with a recorded
/// range, both ends normalize to at most [`NORMALIZED_MAX`] in f32, as the
/// agent computes it; without one, an observation one unit from the mean
/// normalizes to a finite number (`1 / std` finite).
fn check_normalization(o: &super::manifest::ObservationSpec) -> Result<(), String> {
    for i in 0..o.size {
        let (mean, std) = (o.mean[i], o.std[i]);
        let ends = match &o.range {
            Some(r) => [r.low[i], r.high[i]],
            None => [mean - 1.0, mean + 1.0],
        };
        let limit = if o.range.is_some() {
            NORMALIZED_MAX
        } else {
            f32::MAX
        };
        for x in ends {
            let n = (x - mean) / std;
            if n.is_nan() || n.abs() > limit {
                return Err(match &o.range {
                    Some(_) => format!(
                        "observation element {i}: std {std:e} normalizes the recorded range end {x} to {n:e} (at most {NORMALIZED_MAX:e}; the model could not produce finite outputs)"
                    ),
                    None => format!(
                        "observation element {i}: std {std:e} normalizes an observation one unit from the mean to {n:e} (not finite in f32)"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// A two-hot decoding has at least one bin, finite ordered bounds, and
/// decodes to at most [`DECODED_MAX`] in magnitude.
fn check_decoding(what: &str, d: &super::manifest::Decoding) -> Result<(), String> {
    let super::manifest::Decoding::TwoHotSymlog { bins, vmin, vmax } = *d else {
        return Ok(());
    };
    if bins == 0 || !(vmin.is_finite() && vmax.is_finite() && vmin <= vmax) {
        return Err(format!(
            "{what}: two-hot with {bins} bins over [{vmin}, {vmax}] (needs bins >= 1 and finite vmin <= vmax)"
        ));
    }
    let top = vmin.abs().max(vmax.abs());
    let decoded = top.exp_m1();
    if decoded.is_nan() || decoded > DECODED_MAX {
        return Err(format!(
            "{what}: two-hot bins up to {top:e} in symlog space decode to {decoded:e}, beyond {DECODED_MAX:e} (the planner's sums would not be finite)"
        ));
    }
    Ok(())
}

/// Most Q heads a manifest may declare (TD-MPC2 uses 5).
pub const MAX_Q_ENSEMBLE: usize = 64;

/// Width of the Q module's output: `q_ensemble x value width`, checked (a
/// wrapped product could match a small module and pass).
fn q_width(path: &Path, m: &Manifest) -> Result<usize, BundleError> {
    if m.q_ensemble == 0 || m.q_ensemble > MAX_Q_ENSEMBLE {
        return Err(BundleError::Manifest {
            path: path.into(),
            message: format!(
                "q_ensemble {} (must be in 1..={MAX_Q_ENSEMBLE})",
                m.q_ensemble
            ),
        });
    }
    m.q_ensemble
        .checked_mul(m.value_decoding.width())
        .ok_or_else(|| BundleError::Manifest {
            path: path.into(),
            message: format!(
                "q_ensemble {} x value width {} overflows",
                m.q_ensemble,
                m.value_decoding.width()
            ),
        })
}

/// The standard modules' row sizes must follow the manifest's sizes:
/// encoder obs -> z; dynamics z, a -> z; reward z, a -> reward width;
/// q z, a -> q_ensemble x value width; policy z -> mu, log_std.
fn check_roles(path: &Path, m: &Manifest) -> Result<(), BundleError> {
    let (o, l, a) = (m.observation.size, m.latent.size(), m.action.size);
    let roles: [(&str, Vec<usize>, Vec<usize>); 5] = [
        ("encoder", vec![o], vec![l]),
        ("dynamics", vec![l, a], vec![l]),
        ("reward", vec![l, a], vec![m.reward_decoding.width()]),
        ("q", vec![l, a], vec![q_width(path, m)?]),
        ("policy", vec![l], vec![a, a]),
    ];
    for (name, ins, outs) in roles {
        let Some(spec) = m.modules.get(name) else {
            continue;
        };
        let got_in: Vec<usize> = spec.inputs.iter().map(|t| t.size).collect();
        let got_out: Vec<usize> = spec.outputs.iter().map(|t| t.size).collect();
        if got_in != ins || got_out != outs {
            return Err(BundleError::Interface {
                module: name.into(),
                message: format!(
                    "the manifest's sizes (observation {o}, latent {l}, action {a}, decodings) require inputs {ins:?} -> outputs {outs:?}, the module declares {got_in:?} -> {got_out:?}"
                ),
            });
        }
    }
    Ok(())
}

/// A module's manifest name, interface and ONNX graph, ready to be written.
#[derive(Debug, Clone)]
pub struct BuiltModule {
    pub name: String,
    pub spec: ModuleSpec,
    pub model: OnnxModel,
}

/// The one bundle writer: creates `dir` if needed, writes each module's
/// ONNX file, `references.json` when given, then `manifest.json` with
/// `modules`, `references` and `checksums` filled in from what was
/// written. The manifest is written last, so a folder with a manifest is
/// complete; files of the same names are replaced. Returns the manifest.
pub fn write_bundle(
    dir: &Path,
    mut manifest: Manifest,
    modules: &[BuiltModule],
    references: Option<&References>,
) -> Result<Manifest, BundleError> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, "create", e))?;
    for m in modules {
        let bytes = m.model.to_bytes();
        write(&dir.join(&m.spec.file), &bytes)?;
        manifest
            .checksums
            .insert(m.spec.file.clone(), sha256_hex(&bytes));
        manifest.modules.insert(m.name.clone(), m.spec.clone());
    }
    if let Some(r) = references {
        let bytes = serde_json::to_vec(r).expect("references serialize");
        write(&dir.join("references.json"), &bytes)?;
        manifest
            .checksums
            .insert("references.json".into(), sha256_hex(&bytes));
        manifest.references = Some("references.json".into());
    }
    let text = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    write(&dir.join("manifest.json"), &text)?;
    Ok(manifest)
}
