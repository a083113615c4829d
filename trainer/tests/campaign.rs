//! The training binary and the campaign script as a user drives them: a run
//! stopped by SIGTERM checkpoints and resumes, a run killed with SIGKILL
//! resumes from its last atomic checkpoint, and `scripts/train.sh` runs,
//! evaluates, skips and resumes the runs of a list (real processes, real
//! signals, the real trainer and sim binaries).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TRAIN: &str = env!("CARGO_BIN_EXE_dream-mpc-train");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// A config file for the 1-D reach task (100 agent steps an episode) that
/// checkpoints at every episode end.
fn write_config(dir: &Path, steps: u64) -> PathBuf {
    let mut cfg = common::tiny_run(7, steps);
    cfg.checkpoint_minutes = 1e-4;
    cfg.eval_every = 1_000_000;
    let p = dir.join("reach.json");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&p, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    p
}

/// `agent_step` of the checkpoint in `run`, if one is there.
fn checkpoint_step(run: &Path) -> Option<u64> {
    let text = std::fs::read(run.join("checkpoint/state.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    v["agent_step"].as_u64()
}

/// Wait (at most 120 s) until the checkpoint in `run` is past `step`.
fn wait_checkpoint_past(run: &Path, step: u64, child: &mut Child) -> u64 {
    let t = Instant::now();
    loop {
        if let Some(s) = checkpoint_step(run) {
            if s > step {
                return s;
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("the process ended ({st}) before checkpointing past {step}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no checkpoint past {step} within 120 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn train(cfg: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(TRAIN);
    c.args(["train", "--config"])
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .args(["--device", "cpu", "--threads", "1", "--quiet"])
        .args(extra)
        .env("DREAM_MPC_REVISION", "test-revision")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// SIGTERM: the trainer finishes its update, checkpoints and exits 130;
/// SIGKILL: the last atomic checkpoint is whole; both resume and finish.
#[test]
fn a_stopped_and_a_killed_run_resume() {
    let dir = common::tmpdir("campaign", "signals");
    let cfg = write_config(&dir, 100_000);
    let run = dir.join("run");

    // SIGTERM in the middle of training (after the seed phase).
    let mut child = train(&cfg, &run, &[]).spawn().unwrap();
    wait_checkpoint_past(&run, 200, &mut child);
    kill(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let log = text(&out);
    assert!(
        log.contains("stop requested") && log.contains("continue with --resume"),
        "{log}"
    );
    let stopped = checkpoint_step(&run).expect("a checkpoint after SIGTERM");
    assert!((300..100_000).contains(&stopped), "{stopped}");
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let last: u64 = csv
        .lines()
        .last()
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(last, stopped, "metrics.csv was written with the checkpoint");

    // Resume, then SIGKILL once a newer checkpoint exists: nothing is
    // written at the kill, so the newest checkpoint must be whole.
    let mut child = train(&cfg, &run, &["--resume"]).spawn().unwrap();
    let seen = wait_checkpoint_past(&run, stopped, &mut child);
    kill(&child, "-KILL");
    let _ = child.wait();
    assert!(
        run.join("checkpoint/state.json").exists()
            || run.join("checkpoint.old/state.json").exists(),
        "a whole checkpoint survives SIGKILL"
    );

    // Resume to a near end: it finishes and exports.
    let target = seen + 300;
    let out = train(&cfg, &run, &["--resume", "--steps", &target.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{target} agent steps")),
        "{}",
        text(&out)
    );
    assert_eq!(checkpoint_step(&run), Some(target));
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    for col in [
        "agent_step",
        "env_step",
        "pi_log_std",
        "q_scale",
        "updates_per_s",
    ] {
        assert!(header.split(',').any(|c| c == col), "{header}");
    }
    let steps: Vec<u64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        steps.windows(2).all(|w| w[0] <= w[1]),
        "agent steps go forward"
    );
    assert_eq!(*steps.last().unwrap(), target);
    // The training record has every invocation, its command and revision.
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    let inv = record["invocations"].as_array().unwrap();
    assert_eq!(inv.len(), 3, "{record}");
    assert_eq!(inv[2]["revision"], "test-revision");
    assert!(inv[2]["command"].to_string().contains("--resume"));
    let m = dream_mpc::bundle::read_manifest(&run.join("bundle")).unwrap();
    assert_eq!(
        m.provenance.training_steps, target,
        "agent steps in the bundle"
    );
    assert_eq!(m.provenance.revision.as_deref(), Some("test-revision"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The sim binary of this build profile (built here when the workspace
/// build has not made it yet).
fn sim_bin() -> PathBuf {
    let dir = Path::new(TRAIN).parent().unwrap().to_path_buf();
    let bin = dir.join("dream-mpc-sim");
    if !bin.exists() {
        let profile = dir.file_name().unwrap().to_string_lossy().to_string();
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.current_dir(root()).args([
            "build",
            "-q",
            "-p",
            "dream-mpc-sim",
            "--bin",
            "dream-mpc-sim",
        ]);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                c.arg("--release");
            }
            p => {
                c.args(["--profile", p]);
            }
        }
        assert!(c.status().unwrap().success(), "building dream-mpc-sim");
    }
    bin
}

fn campaign(list: &Path, runs: &Path) -> Command {
    let mut c = Command::new("bash");
    c.arg(root().join("scripts/train.sh"))
        .arg("--runs")
        .arg(runs)
        .arg(list)
        .env("DREAM_MPC_TRAIN_BIN", TRAIN)
        .env("DREAM_MPC_SIM_BIN", sim_bin())
        .env("EVAL_EPISODES", "2")
        .env("EVAL_PLANNERS", "policy,dream_mpc")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// `scripts/train.sh`: a list of two runs trains and evaluates both, a
/// second call skips them, a stopped campaign resumes, bad lists and a
/// runs folder inside the checkout are refused.
#[test]
fn campaign_script_runs_evaluates_skips_and_resumes() {
    let dir = common::tmpdir("campaign", "script");
    let cfg = write_config(&dir, 300);
    let runs = dir.join("runs");
    let list = dir.join("list.txt");
    std::fs::write(
        &list,
        format!(
            "# a comment\nreach-a {c} 1\n\nreach-b {c} 2 --steps 200  # short\n",
            c = cfg.display()
        ),
    )
    .unwrap();
    let out = campaign(&list, &runs).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for (name, steps) in [("reach-a", 300), ("reach-b", 200)] {
        let d = runs.join(name);
        assert!(d.join("done").exists(), "{name}: {}", text(&out));
        let eval = std::fs::read_to_string(d.join("eval.md")).unwrap();
        assert!(
            eval.contains("dream_mpc") && eval.contains("policy"),
            "{eval}"
        );
        assert_eq!(checkpoint_step(&d), Some(steps));
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("run.json")).unwrap()).unwrap();
        let rev = record["invocations"][0]["revision"].as_str().unwrap();
        assert!(rev.len() >= 7, "the checkout's revision is recorded: {rev}");
    }
    // Their seeds on one plot, with a reference line; bad input refused.
    let png = dir.join("seeds.png");
    let o = Command::new(TRAIN)
        .args(["curves", "--out"])
        .arg(&png)
        .args(["--reference", "published=25.5"])
        .arg(runs.join("reach-a"))
        .arg(runs.join("reach-b").join("metrics.csv"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    for (args, run, want) in [
        (
            vec!["--reference", "no-number"],
            runs.join("reach-a"),
            "expected LABEL=RETURN",
        ),
        (vec![], dir.join("no-such-run"), "no-such-run: No such file"),
    ] {
        let o = Command::new(TRAIN)
            .args(["curves", "--out"])
            .arg(&png)
            .args(&args)
            .arg(run)
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(text(&o).contains(want), "{}", text(&o));
    }
    // A second call finds them done.
    let again = campaign(&list, &runs).output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(
        text(&again).matches("done already").count(),
        2,
        "{}",
        text(&again)
    );

    // A long run stopped through the script checkpoints and resumes.
    let long = dir.join("long.txt");
    std::fs::write(
        &long,
        format!("reach-long {} 3 --steps 100000\n", cfg.display()),
    )
    .unwrap();
    let mut child = campaign(&long, &runs).spawn().unwrap();
    let run = runs.join("reach-long");
    let at = wait_checkpoint_past(&run, 200, &mut child);
    kill(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let stopped = checkpoint_step(&run).unwrap();
    assert!(stopped >= at && !run.join("done").exists());
    let target = stopped + 200;
    std::fs::write(
        &long,
        format!("reach-long {} 3 --steps {target}\n", cfg.display()),
    )
    .unwrap();
    let out = campaign(&long, &runs).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("reach-long: resume"), "{}", text(&out));
    assert_eq!(checkpoint_step(&run), Some(target));
    assert!(run.join("done").exists());

    // Refusals: a malformed line, a missing config, runs inside the checkout.
    for (body, want) in [
        ("reach-x only-two\n", "expected 'NAME CONFIG SEED"),
        ("reach-x /no/such.json 1\n", "no config at"),
    ] {
        std::fs::write(&list, body).unwrap();
        let o = campaign(&list, &runs).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(want), "{}", text(&o));
    }
    let o = campaign(&long, &root().join("runs")).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("inside the checkout"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}
