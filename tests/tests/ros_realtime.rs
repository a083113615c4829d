//! `realtime.*` of `dream-mpc run` end to end, over real DDS on localhost
//! (the test is the second participant, listening to `/action` and
//! `/diagnostics`):
//!
//! - granted (these machines run as root): SCHED_FIFO and the pinning are
//!   in force on the thread named `control` and on no DDS thread (read
//!   from /proc/<pid>/task/*), the process's memory is locked (VmLck), and
//!   the start-up line, `/diagnostics` and the JSON report say so;
//! - refused: the node runs under `prlimit --memlock=0:0 setpriv` without
//!   CAP_SYS_NICE and CAP_IPC_LOCK and is asked for a core that does not
//!   exist: one warning per setting naming the setting and the missing
//!   permission, the node runs without them and reports none in force;
//! - refused with `realtime.required: true`: exit code 2 before the first
//!   tick (no action ever published).

use dream_mpc::msgs::Float64MultiArray;
use dream_mpc_tests::peer::Peer;
use dream_mpc_tests::{bins, root, wait_bounded};
use ros2_client::Subscription;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = "config/plumbing.yaml";
/// Drops CAP_SYS_NICE and CAP_IPC_LOCK (also from the bounding set, so a
/// root process cannot regain them at exec) and RLIMIT_MEMLOCK.
const DROP: &[&str] = &[
    "--memlock=0:0",
    "setpriv",
    "--inh-caps=-sys_nice,-ipc_lock",
    "--bounding-set=-sys_nice,-ipc_lock",
];

/// A private domain id per test (ours 70..=99).
fn domain(k: u16) -> u16 {
    70 + (std::process::id() % 10) as u16 * 3 + k
}

/// `dream-mpc run` on the plumbing config with the parameters `params`
/// (`key:=value`, each passed as `-p key:=value`); under `prlimit ...
/// setpriv ...` when `drop` is set.
fn spawn(domain: u16, drop: bool, params: &[&str]) -> Child {
    let bin = bins().0.clone();
    let mut cmd = if drop {
        let mut c = Command::new("prlimit");
        c.args(DROP).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    cmd.current_dir(root())
        .env("ROS_DOMAIN_ID", domain.to_string())
        .args(["run", "--json", "--params-file", CONFIG, "--ros-args"])
        .args(params.iter().flat_map(|p| ["-p", p]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dream-mpc run (prlimit and setpriv are in util-linux)")
}

/// The test's participant listening to `/action` on `domain(k)`, then
/// `dream-mpc run` there with `params` and the permissions dropped.
fn listen_and_spawn_dropped(
    k: u16,
    params: &[&str],
) -> (Peer, Subscription<Float64MultiArray>, Child) {
    let d = domain(k);
    let mut peer = Peer::new(d, "ros_realtime_test");
    let actions = peer.actions();
    (peer, actions, spawn(d, true, params))
}

fn wait_first_action(sub: &Subscription<Float64MultiArray>) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = sub.take() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Per thread of `pid`: (name, scheduling policy, rt priority, allowed cpus).
fn threads(pid: u32) -> Vec<(String, u32, u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = e.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let Some(i) = stat.rfind(')') else { continue };
        let f: Vec<&str> = stat[i + 1..].split_whitespace().collect();
        // after the name: field 3 is index 0; rt_priority 40, policy 41
        let num = |k: usize| {
            f.get(k - 3)
                .and_then(|x| x.parse().ok())
                .unwrap_or(u32::MAX)
        };
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or("")
            .trim()
            .to_string();
        out.push((comm.trim().to_string(), num(41), num(40), cpus));
    }
    out
}

fn vm_locked_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn report(out: &str) -> serde_json::Value {
    let line = out.trim().lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
}

fn privileged() -> bool {
    // CAP_SYS_NICE is bit 23, CAP_IPC_LOCK bit 14 of CapEff
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
            u64::from_str_radix(hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << 23) != 0 && caps & (1 << 14) != 0)
}

#[test]
fn granted_settings_are_in_force_on_the_control_thread_only_and_reported() {
    if !privileged() {
        eprintln!("skipped: this test process lacks CAP_SYS_NICE / CAP_IPC_LOCK");
        return;
    }
    let cpu = std::thread::available_parallelism().unwrap().get() - 1;
    let d = domain(0);
    let mut peer = Peer::new(d, "ros_realtime_test");
    let actions = peer.actions();
    let diags = peer.diagnostics();
    let cpu_arg = format!("realtime.cpu:={cpu}");
    let ctl = spawn(
        d,
        false,
        &[
            "realtime.priority:=10",
            &cpu_arg,
            "realtime.lock_memory:=true",
            "realtime.prefault_stack_kib:=512",
            "diagnostics_period_s:=0.2",
        ],
    );
    assert!(wait_first_action(&actions), "no action within 10 s");
    let pid = ctl.id();
    let ts = threads(pid);
    let control: Vec<_> = ts.iter().filter(|t| t.0 == "control").collect();
    assert_eq!(control.len(), 1, "threads: {ts:?}");
    let (_, policy, prio, cpus) = control[0];
    assert_eq!(
        (*policy, *prio),
        (1, 10),
        "control thread not SCHED_FIFO 10"
    );
    assert_eq!(cpus, &cpu.to_string(), "control thread affinity");
    for t in ts.iter().filter(|t| t.0.starts_with("dds-")) {
        assert_eq!(t.1, 0, "DDS thread {} must stay SCHED_OTHER: {ts:?}", t.0);
    }
    assert!(ts.iter().any(|t| t.0 == "dds-in"), "{ts:?}");
    assert!(vm_locked_kib(pid) > 0, "VmLck is 0 with lock_memory");
    std::thread::sleep(Duration::from_millis(600));
    let mut seen = std::collections::BTreeMap::new();
    while let Ok(Some((m, _))) = diags.take() {
        for kv in &m.status[0].values {
            if kv.key.starts_with("rt_") {
                seen.insert(kv.key.clone(), kv.value.clone());
            }
        }
    }
    let st = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let (st, out, err, _) = wait_bounded(ctl, Duration::from_secs(5));
    assert!(st.success(), "{err}");
    assert!(
        err.contains(&format!(
            "control thread SCHED_FIFO priority 10, pinned to cpu {cpu}, memory locked, stack prefaulted 512 KiB"
        )),
        "start-up line: {err}"
    );
    assert!(!err.contains("warning"), "{err}");
    let r = report(&out);
    assert_eq!(r["rt_priority"], 10);
    assert_eq!(r["rt_cpu"], cpu);
    assert_eq!(r["rt_memory_locked"], true);
    assert_eq!(r["rt_stack_prefaulted_kib"], 512);
    assert_eq!(
        seen.get("rt_priority").map(String::as_str),
        Some("10"),
        "{seen:?}"
    );
    assert_eq!(seen.get("rt_cpu"), Some(&cpu.to_string()), "{seen:?}");
    assert_eq!(
        seen.get("rt_memory_locked").map(String::as_str),
        Some("true")
    );
}

#[test]
fn refused_settings_are_warned_by_name_and_the_node_runs_without_them() {
    let (_peer, actions, ctl) = listen_and_spawn_dropped(
        1,
        &[
            "realtime.priority:=10",
            "realtime.cpu:=1023",
            "realtime.lock_memory:=true",
        ],
    );
    assert!(
        wait_first_action(&actions),
        "the node did not run after the refusals"
    );
    let pid = ctl.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let (st, out, err, _) = wait_bounded(ctl, Duration::from_secs(5));
    assert!(st.success(), "{err}");
    for (setting, permission) in [
        ("realtime.priority", "CAP_SYS_NICE or RLIMIT_RTPRIO"),
        ("realtime.lock_memory", "CAP_IPC_LOCK"),
        ("realtime.cpu", "cpu 1023 does not exist"),
    ] {
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("warning") && l.contains(setting))
            .collect();
        assert_eq!(lines.len(), 1, "one warning for {setting}: {err}");
        assert!(lines[0].contains(permission), "{}", lines[0]);
        assert!(lines[0].contains("running without it"), "{}", lines[0]);
    }
    assert!(
        err.contains("control thread normal scheduler, not pinned, memory not locked"),
        "{err}"
    );
    let r = report(&out);
    assert!(r["ticks"].as_f64().unwrap() > 0.0);
    assert_eq!(r["rt_priority"], 0);
    assert!(r["rt_cpu"].is_null(), "{r}");
    assert_eq!(r["rt_memory_locked"], false);
}

#[test]
fn a_refusal_with_required_exits_before_the_first_tick() {
    let (_peer, actions, ctl) =
        listen_and_spawn_dropped(2, &["realtime.priority:=10", "realtime.required:=true"]);
    let (st, out, err, _) = wait_bounded(ctl, Duration::from_secs(10));
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(
        err.contains("realtime.required is true and the OS refused realtime.priority"),
        "{err}"
    );
    assert!(out.trim().is_empty(), "a run report was printed: {out}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        actions.take().ok().flatten().is_none(),
        "an action was published"
    );
}
