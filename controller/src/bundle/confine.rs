//! The confined, bounded reader every bundle file goes through. A file
//! named by a manifest is read only if
//!
//! - its name is relative and made of plain components (no absolute path,
//!   no `..`, no drive or root prefix, not empty);
//! - it resolves (symlinks followed by `canonicalize`) to a path inside the
//!   canonical bundle folder: a symlink to a file inside the bundle is
//!   accepted, one that leaves the folder (`/etc/passwd`, `/dev/zero`,
//!   `../other`) is refused;
//! - the resolved path is opened with `O_NOFOLLOW | O_NONBLOCK` (a symlink
//!   swapped in after the check is not followed; opening a FIFO does not
//!   block) and the *opened handle* is a regular file (no FIFO, device,
//!   socket or folder) no larger than the cap;
//! - the bytes are read through that same handle, at most `cap + 1` of
//!   them, and refused if over the cap (a file that grows or lies about its
//!   size still costs at most `cap + 1` bytes).
//!
//! What remains outside this check: a folder on the way to the file that is
//! swapped for a symlink between `canonicalize` and `open` by someone with
//! write access to the bundle folder (that person can change the bundle
//! anyway; the checksums then fail).
//!
//! Start-up cost only: one `canonicalize`, one `open`, one `fstat` and a
//! bounded read per file.

use super::error::BundleError;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// One mebibyte, the unit of the caps' command-line and parameter forms.
pub const MIB: u64 = 1 << 20;

/// Default cap on a module (ONNX) or references file: 512 MiB. TD-MPC2's
/// largest public model (317M parameters) is about 1.2 GB of f32 and needs
/// the override; its 19M model is about 76 MB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 512 * MIB;
/// Default cap on `manifest.json`: 16 MiB (a manifest is a few KB; its
/// observation mean/std/range lists grow with the observation size only).
pub const DEFAULT_MAX_MANIFEST_BYTES: u64 = 16 * MIB;

/// Size caps of the loader. `dream-mpc check --max-file-mib` and the
/// node's `bundle_max_file_mib` parameter override `file_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest module or references file read, in bytes.
    pub file_bytes: u64,
    /// Largest `manifest.json` read, in bytes.
    pub manifest_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            file_bytes: DEFAULT_MAX_FILE_BYTES,
            manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES,
        }
    }
}

impl Limits {
    /// The defaults with the file cap set to `mib` MiB (saturating).
    pub fn with_file_mib(mib: u64) -> Self {
        Limits {
            file_bytes: mib.saturating_mul(MIB),
            ..Limits::default()
        }
    }
}

/// Most characters of a file name quoted in an error (a hostile manifest
/// may name a file with megabytes of characters).
const MAX_QUOTE: usize = 80;

/// `name` cut to [`MAX_QUOTE`] characters, with a marker when cut.
pub fn quote(name: &str) -> String {
    if name.chars().count() <= MAX_QUOTE {
        name.to_string()
    } else {
        let head: String = name.chars().take(MAX_QUOTE).collect();
        format!("{head}... ({} bytes)", name.len())
    }
}

fn unsafe_path(file: &str, message: impl Into<String>) -> BundleError {
    BundleError::UnsafePath {
        file: quote(file),
        message: message.into(),
    }
}

/// Check that `file` is a relative name of plain components (a leading
/// `./` is allowed); returns the error naming the first fault.
pub fn check_relative(file: &str) -> Result<(), BundleError> {
    if file.is_empty() {
        return Err(unsafe_path(file, "empty file name"));
    }
    if file.contains('\0') {
        return Err(unsafe_path(file, "file name contains a NUL byte"));
    }
    let p = Path::new(file);
    if p.is_absolute() || file.starts_with('/') {
        return Err(unsafe_path(
            file,
            "absolute path (bundle files must be relative to the bundle folder)",
        ));
    }
    let mut plain = 0usize;
    for c in p.components() {
        match c {
            Component::Normal(_) => plain += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(unsafe_path(
                    file,
                    "`..` in the path (bundle files must stay inside the bundle folder)",
                ))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_path(file, "absolute path"))
            }
        }
    }
    if plain == 0 {
        return Err(unsafe_path(file, "names no file"));
    }
    Ok(())
}

fn io(path: &Path, what: &str, e: std::io::Error) -> BundleError {
    BundleError::Io {
        path: path.to_path_buf(),
        message: format!("cannot {what}: {e}"),
    }
}

/// The canonical form of the bundle folder `dir` (must be a folder).
pub fn canonical_dir(dir: &Path) -> Result<PathBuf, BundleError> {
    let c = dir
        .canonicalize()
        .map_err(|e| io(dir, "open the bundle folder", e))?;
    if !c.is_dir() {
        return Err(BundleError::Io {
            path: dir.to_path_buf(),
            message: "not a folder".into(),
        });
    }
    Ok(c)
}

/// Read `file` (relative to the bundle folder `dir`) under the rules of
/// the module docs, at most `cap` bytes. Errors name the file and the rule
/// it broke.
pub fn read_confined(dir: &Path, file: &str, cap: u64) -> Result<Vec<u8>, BundleError> {
    check_relative(file)?;
    let root = canonical_dir(dir)?;
    let joined = root.join(file);
    let real = joined
        .canonicalize()
        .map_err(|e| io(&joined, "resolve", e))?;
    if !real.starts_with(&root) {
        return Err(unsafe_path(
            file,
            format!(
                "resolves to {}, outside the bundle folder {} (a symlink leaving the folder)",
                quote(&real.display().to_string()),
                root.display()
            ),
        ));
    }
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&real)
        .map_err(|e| io(&real, "open", e))?;
    let meta = handle.metadata().map_err(|e| io(&real, "stat", e))?;
    if !meta.is_file() {
        return Err(unsafe_path(
            file,
            format!("not a regular file ({})", kind_name(&meta)),
        ));
    }
    if meta.len() > cap {
        return Err(BundleError::TooLarge {
            file: quote(file),
            bytes: meta.len(),
            cap,
        });
    }
    read_bounded(handle, &real, file, cap, meta.len())
}

/// Read at most `cap + 1` bytes of `handle`; refuse if more than `cap`.
fn read_bounded(
    handle: File,
    path: &Path,
    file: &str,
    cap: u64,
    hint: u64,
) -> Result<Vec<u8>, BundleError> {
    let mut bytes = Vec::with_capacity(hint.min(cap) as usize);
    handle
        .take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io(path, "read", e))?;
    if bytes.len() as u64 > cap {
        return Err(BundleError::TooLarge {
            file: quote(file),
            bytes: bytes.len() as u64,
            cap,
        });
    }
    Ok(bytes)
}

/// What a file that is not a plain file is ("a FIFO", "a folder", ...), for
/// refusals; the bag reader names its refusals the same way.
pub fn kind_name(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a plain file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_any_file_is_touched() {
        for bad in [
            "",
            "/etc/passwd",
            "../x.onnx",
            "a/../../x",
            "./..",
            ".",
            "a\0b",
        ] {
            assert!(
                matches!(check_relative(bad), Err(BundleError::UnsafePath { .. })),
                "{bad:?} accepted"
            );
        }
        for good in ["encoder.onnx", "./q.onnx", "sub/dir/p.onnx"] {
            check_relative(good).unwrap();
        }
    }

    #[test]
    fn long_names_are_quoted_short() {
        let long = "x".repeat(10_000);
        let q = quote(&long);
        assert!(q.len() < 120, "{q}");
        assert!(q.contains("10000 bytes"));
    }
}
