//! The confined, bounded loader: a module or references
//! path that is absolute, holds `..`, is a symlink leaving the bundle
//! folder, a FIFO, `/dev/zero` through a symlink, or a file over its size
//! cap is refused, through the library loader and through `dream-mpc
//! check`, quickly (a FIFO or /dev/zero must not hang or grow memory).
//! In every escaping case the outside file exists and its checksum is the
//! manifest's, so the refusal comes from the path rule, not from a
//! missing file or a mismatch.

use dream_mpc::bundle::{sha256_hex, BundleError, Limits};
use dream_mpc::load::{Bundle, LoadError};
use dream_mpc_testkit::bundles::{TdmpcModel, TdmpcSpec};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh scratch folder (`tag` in its name) holding a tiny bundle in
/// its `b` subfolder: (folder, bundle folder).
fn fresh(tag: &str) -> (PathBuf, PathBuf) {
    let root = std::env::temp_dir().join(format!("dmpc-confine-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&root).ok();
    std::fs::create_dir_all(&root).unwrap();
    let s = TdmpcSpec::tiny(3, 1, 5);
    let b = root.join("b");
    TdmpcModel::random(&s).write(&b).unwrap();
    (root, b)
}

fn edit_manifest(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// Copy the encoder of the bundle in `dir` to `to`; returns its checksum.
fn copy_encoder(dir: &Path, to: &Path) -> String {
    std::fs::copy(dir.join("encoder.onnx"), to).unwrap();
    sha256_hex(&std::fs::read(to).unwrap())
}

/// Point module `encoder` at `file`, with `sha` as its checksum.
fn rename_encoder(dir: &Path, file: &str, sha: &str) {
    edit_manifest(dir, |v| {
        v["modules"]["encoder"]["file"] = file.into();
        let c = v["checksums"].as_object_mut().unwrap();
        c.remove("encoder.onnx");
        c.insert(file.into(), sha.into());
    });
}

/// `dream-mpc check` with a hard 60 s limit (a FIFO used to hang it).
fn check_cmd(d: &Path, extra: &[&str]) -> (bool, String, Duration) {
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dream-mpc"))
        .arg("check")
        .arg(d)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            child.kill().ok();
            child.wait().ok();
            panic!("dream-mpc check on {} did not finish in 60 s", d.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text, t0.elapsed())
}

/// Both entry points refuse `dir`; the library error matches `want` and
/// the command's output contains `says`.
fn refused(dir: &Path, limits: Limits, want: fn(&BundleError) -> bool, says: &str) {
    let t0 = Instant::now();
    match Bundle::load_with(dir, limits) {
        Err(LoadError::Bundle(e)) => assert!(want(&e), "{}: unexpected error {e}", dir.display()),
        Err(e) => panic!("{}: unexpected error {e}", dir.display()),
        Ok(_) => panic!("{}: loaded", dir.display()),
    }
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "library loader too slow"
    );
    let mib = (limits.file_bytes >> 20).to_string();
    let (ok, text, took) = check_cmd(dir, &["--max-file-mib", &mib]);
    assert!(!ok, "check passed:\n{text}");
    assert!(text.contains(says), "check output lacks `{says}`:\n{text}");
    assert!(took < Duration::from_secs(30), "check took {took:?}");
}

fn unsafe_path(e: &BundleError) -> bool {
    matches!(e, BundleError::UnsafePath { .. })
}

/// [`refused`] at the default limits as an unsafe path.
fn refused_unsafe(dir: &Path, says: &str) {
    refused(dir, Limits::default(), unsafe_path, says)
}

#[test]
fn absolute_module_path_is_refused() {
    let (root, b) = fresh("abs");
    // An absolute path to a file that exists, with its true checksum.
    let outside = root.join("outside.onnx");
    let sha = copy_encoder(&b, &outside);
    rename_encoder(&b, outside.to_str().unwrap(), &sha);
    refused_unsafe(&b, "absolute path");
    // /etc/passwd: refused before it is read, so its hash is never printed.
    let (root2, b2) = fresh("passwd");
    rename_encoder(&b2, "/etc/passwd", &"0".repeat(64));
    refused_unsafe(&b2, "absolute path");
    std::fs::remove_dir_all(&root).ok();
    std::fs::remove_dir_all(&root2).ok();
}

#[test]
fn parent_dir_in_module_path_is_refused() {
    let (root, b) = fresh("dotdot");
    std::fs::create_dir_all(root.join("outside")).unwrap();
    let sha = copy_encoder(&b, &root.join("outside/x.onnx"));
    rename_encoder(&b, "../outside/x.onnx", &sha);
    refused_unsafe(&b, "`..`");
    // The references file too.
    let (root2, b2) = fresh("dotdot-refs");
    edit_manifest(&b2, |v| v["references"] = "../refs.json".into());
    refused_unsafe(&b2, "`..`");
    std::fs::remove_dir_all(&root).ok();
    std::fs::remove_dir_all(&root2).ok();
}

#[test]
fn symlink_leaving_the_folder_is_refused_and_one_inside_is_read() {
    let (root, b) = fresh("symlink");
    // Escaping: encoder.onnx -> ../outside.onnx (same bytes, checksum ok).
    std::fs::rename(b.join("encoder.onnx"), root.join("outside.onnx")).unwrap();
    std::os::unix::fs::symlink(root.join("outside.onnx"), b.join("encoder.onnx")).unwrap();
    refused_unsafe(&b, "outside the bundle folder");
    // Inside: encoder.onnx -> real/encoder.onnx is accepted.
    std::fs::remove_file(b.join("encoder.onnx")).unwrap();
    std::fs::create_dir_all(b.join("real")).unwrap();
    std::fs::rename(root.join("outside.onnx"), b.join("real/encoder.onnx")).unwrap();
    std::os::unix::fs::symlink("real/encoder.onnx", b.join("encoder.onnx")).unwrap();
    Bundle::load(&b).expect("a symlink inside the bundle folder is fine");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn fifo_is_refused_without_hanging() {
    let (root, b) = fresh("fifo");
    std::fs::remove_file(b.join("encoder.onnx")).unwrap();
    let c = std::ffi::CString::new(b.join("encoder.onnx").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    refused_unsafe(&b, "a FIFO");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn dev_zero_through_a_symlink_is_refused_without_growing() {
    let (root, b) = fresh("zero");
    std::fs::remove_file(b.join("encoder.onnx")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", b.join("encoder.onnx")).unwrap();
    refused_unsafe(&b, "outside the bundle folder");
    // manifest.json itself.
    let (root2, b2) = fresh("zero-manifest");
    std::fs::remove_file(b2.join("manifest.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", b2.join("manifest.json")).unwrap();
    refused_unsafe(&b2, "outside the bundle folder");
    std::fs::remove_dir_all(&root).ok();
    std::fs::remove_dir_all(&root2).ok();
}

#[test]
fn file_over_the_cap_is_refused_and_the_cap_is_overridable() {
    let (root, b) = fresh("big");
    // A 1 MiB + 1 byte file listed in the checksums (every listed file is
    // read): sparse, so the test costs no disk.
    let big = std::fs::File::create(b.join("big.bin")).unwrap();
    big.set_len((1 << 20) + 1).unwrap();
    drop(big);
    let sha = sha256_hex(&vec![0u8; (1 << 20) + 1]);
    edit_manifest(&b, |v| {
        v["checksums"]
            .as_object_mut()
            .unwrap()
            .insert("big.bin".into(), sha.into());
    });
    let one_mib = Limits::with_file_mib(1);
    refused(
        &b,
        one_mib,
        |e| matches!(e, BundleError::TooLarge { bytes, cap, .. } if *bytes > *cap && *cap == 1 << 20),
        "over its size cap",
    );
    // The same bundle under a 2 MiB cap (and the default) loads.
    Bundle::load_with(&b, Limits::with_file_mib(2)).expect("under the raised cap");
    Bundle::load(&b).expect("under the default cap");
    std::fs::remove_dir_all(&root).ok();
}
