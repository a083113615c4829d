//! Where a relative bundle path in a parameter file is looked up, so that a
//! config installed by `colcon build` (`share/dream-mpc/config/*.yaml`,
//! saying `bundle: models/pendulum-swingup`) finds the model installed
//! beside it (`share/dream-mpc/models/...`) from any working directory.
//!
//! Order, first existing folder wins:
//! 1. an absolute path, as given;
//! 2. relative to the working directory (a repository checkout);
//! 3. relative to this package's share folder next to the running
//!    executable: `<prefix>/lib/dream-mpc/dream-mpc` -> `<prefix>/share/dream-mpc/`;
//! 4. relative to `<p>/share/dream-mpc/` for each `p` of `AMENT_PREFIX_PATH`
//!    (set by `source install/setup.bash`), in order.
//!
//! Not found: the error names every path tried. Runs once at start-up.

use std::path::{Path, PathBuf};

/// The ROS 2 package that installs the controller (package.xml).
pub const PACKAGE: &str = "dream-mpc";
/// Most `AMENT_PREFIX_PATH` entries looked at.
const MAX_PREFIXES: usize = 64;

/// The share folders of this package, in lookup order (3 and 4 above).
pub fn share_dirs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        let lib_pkg = exe.parent();
        let is_installed = lib_pkg.and_then(Path::file_name) == Some(PACKAGE.as_ref())
            && lib_pkg.and_then(Path::parent).and_then(Path::file_name) == Some("lib".as_ref());
        if let Some(prefix) = lib_pkg
            .and_then(Path::parent)
            .and_then(Path::parent)
            .filter(|_| is_installed)
        {
            out.push(prefix.join("share").join(PACKAGE));
        }
    }
    if let Some(v) = std::env::var_os("AMENT_PREFIX_PATH") {
        for p in std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .take(MAX_PREFIXES)
        {
            let d = p.join("share").join(PACKAGE);
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}

/// The bundle folder `bundle` names (see the module docs), or an error
/// naming every path tried.
pub fn find_bundle(bundle: &Path) -> Result<PathBuf, String> {
    find_in(bundle, &share_dirs())
}

/// [`find_bundle`] with the share folders given.
pub fn find_in(bundle: &Path, shares: &[PathBuf]) -> Result<PathBuf, String> {
    let mut tried = vec![bundle.to_path_buf()];
    if bundle.is_dir() {
        return Ok(bundle.to_path_buf());
    }
    if bundle.is_relative() {
        for s in shares {
            let p = s.join(bundle);
            if p.is_dir() {
                return Ok(p);
            }
            tried.push(p);
        }
    }
    Err(format!(
        "bundle '{}' not found; tried: {} (a relative bundle path is looked up in the working directory, then in the {PACKAGE} package's share folder next to the executable and under each AMENT_PREFIX_PATH entry)",
        bundle.display(),
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_bundles_are_found_in_share_folders_and_misses_name_every_path() {
        let root = std::env::temp_dir().join(format!("dmpc_share_{}", std::process::id()));
        let (a, b) = (
            root.join("a/share/dream-mpc"),
            root.join("b/share/dream-mpc"),
        );
        std::fs::create_dir_all(b.join("models/m")).unwrap();
        std::fs::create_dir_all(&a).unwrap();
        let shares = vec![a.clone(), b.clone()];
        assert_eq!(
            find_in(Path::new("models/m"), &shares).unwrap(),
            b.join("models/m")
        );
        // absolute: as given, never joined
        let abs = b.join("models/m");
        assert_eq!(find_in(&abs, &shares).unwrap(), abs);
        let e = find_in(Path::new("models/none"), &shares).unwrap_err();
        for p in [
            "models/none".to_string(),
            a.join("models/none").display().to_string(),
            b.join("models/none").display().to_string(),
        ] {
            assert!(e.contains(&p), "{e} lacks {p}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
