//! The `dream-mpc-sim` binary: the README's first command prints one
//! return line per episode and a summary; bad names are clear errors.

use std::process::Command;

fn sim(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dream-mpc-sim"))
        .args(args)
        .output()
        .expect("run dream-mpc-sim");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn run_prints_per_episode_returns_and_summary() {
    let (ok, out, err) = sim(&[
        "run",
        "--task",
        "pendulum-swingup",
        "--episodes",
        "3",
        "--seed",
        "0",
        "--policy",
        "swing",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    for (i, line) in lines[..3].iter().enumerate() {
        assert!(
            line.starts_with(&format!("episode {i} seed {i} return ")),
            "{line}"
        );
        assert!(line.contains("steps 1000"), "{line}");
        let ret: f64 = line.split_whitespace().nth(5).unwrap().parse().unwrap();
        assert!(ret > 300.0, "{line}");
    }
    assert!(lines[3].contains("(mean ± std)"), "{}", lines[3]);
}

#[test]
fn list_shows_every_task_and_errors_are_clear() {
    let (ok, out, _) = sim(&["list"]);
    assert!(ok);
    for name in dream_mpc_sim::registry::names() {
        assert!(out.contains(&name), "{out}");
    }
    let (ok, _, err) = sim(&["run", "--task", "walker-walk"]);
    assert!(!ok);
    assert!(
        err.contains("unknown task 'walker-walk'") && err.contains("acrobot-swingup"),
        "{err}"
    );
    let (ok, _, err) = sim(&["run", "--policy", "greedy"]);
    assert!(!ok);
    assert!(err.contains("unknown policy 'greedy'"), "{err}");
}
