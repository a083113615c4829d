//! Soak benchmark (not a test): Dream-MPC on the shipped
//! cart-pole model (`config/cartpole.yaml` at 100 Hz) under `dream-mpc run`
//! over DDS on localhost for `--ticks N` control ticks (default 200,000,
//! about 35 minutes), with faults injected every 10 s in turn: an
//! observation gap of 3 watchdog periods, 5 NaN and 5 wrong-sized messages,
//! a 0.2 s burst at 10x the rate. The observation is a plausible cart-pole
//! state streamed at the control rate by a peer on its own participant.
//!
//! Reported: the controller's resident memory (VmRSS of the process,
//! sampled every 10 s: first, last, max), its final counters (ticks,
//! planned, stale / non-finite / wrong-size ticks, deadline misses,
//! overruns, latency and jitter), and the recovery times of the injected
//! gaps (last good observation -> first safe action; first good
//! observation after -> first planned action), median and max.
//! Allocation on the control path is proven by `tests/ros_tick_alloc.rs`
//! (counting allocator, the node's own update step), not measured here.
//!
//! Options: `--ticks N`; `--domain D` (default 20..27, away from the test
//! suite's 1..8); `--faults off` (good observations only); `--controller
//! PATH` (soak another `dream-mpc` build, e.g. before/after side by side);
//! `--csv FILE` (every RSS sample split into heap / anonymous / file
//! mappings). The slopes after 120 s locate a creep: glibc's per-thread
//! arenas show up as anonymous (docs/RESULTS.md, "Soak").
//!
//!     cargo bench -p dream-mpc-tests --bench ros_soak --profile dev -- --ticks 200000
//!     cargo bench -p dream-mpc-tests --bench ros_soak --profile dev -- --ticks 6000   # 1 minute

use dream_mpc_tests::faults::{self, Recorder, Robot, SAFE};
use std::time::{Duration, Instant};

const RATE_HZ: f64 = 100.0;

fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Resident KiB of the controller by kind of mapping, from
/// `/proc/<pid>/smaps`: the main heap (`[heap]`, glibc's main arena), the
/// anonymous mappings (glibc's per-thread arenas, thread stacks, large
/// `mmap`ed blocks) and the rest (the binary and its libraries).
#[derive(Clone, Copy, Debug, Default)]
struct Rss {
    total: u64,
    heap: u64,
    anon: u64,
    files: u64,
}

fn rss_by_kind(pid: u32) -> Option<Rss> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let mut r = Rss::default();
    let mut kind = 0u8; // 0 heap, 1 anonymous, 2 file or special
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let first = w.next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            // a mapping header: address perms offset dev inode [path]
            let path = w.nth(4);
            kind = match path {
                Some("[heap]") => 0,
                None => 1,
                Some(_) => 2,
            };
        } else if first == "Rss:" {
            let kib: u64 = w.next()?.parse().ok()?;
            r.total += kib;
            match kind {
                0 => r.heap += kib,
                1 => r.anon += kib,
                _ => r.files += kib,
            }
        }
    }
    Some(r)
}

/// Least-squares slope (KiB/s) of `y` over `t` (seconds).
fn slope(t: &[f64], y: &[f64]) -> f64 {
    let n = t.len() as f64;
    if t.len() < 2 {
        return f64::NAN;
    }
    let (mt, my) = (t.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = t.iter().zip(y).map(|(a, b)| (a - mt) * (b - my)).sum();
    let var: f64 = t.iter().map(|a| (a - mt) * (a - mt)).sum();
    cov / var
}

fn med_max(v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return "–".into();
    }
    format!("{:.1} / {:.1}", v[v.len() / 2], v[v.len() - 1])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let ticks: u64 = opt("--ticks")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let secs = ticks as f64 / RATE_HZ;
    // Domains 1..8 belong to the ROS 2 test suite; a soak on one of them
    // would receive the tests' observations (cross-talk).
    let domain: u16 = opt("--domain")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20 + (std::process::id() % 8) as u16);
    let faults_on = opt("--faults").as_deref() != Some("off");
    // Optional CSV of every RSS sample: seconds,total,heap,anon,files (KiB).
    let csv = opt("--csv");
    let rec = Recorder::new(domain);
    let robot = Robot::new(domain);
    let extra = [
        "-p",
        "control_rate_hz:=100.0",
        "-p",
        "on_planner_fault:=continue",
    ];
    // `--controller PATH` soaks another build of `dream-mpc` (a before/after
    // comparison in one run); the arguments are those of
    // `faults::controller_with`.
    let ctl = match opt("--controller") {
        None => faults::controller_with(domain, "config/cartpole.yaml", &extra),
        Some(bin) => {
            let mut a = vec![
                "run",
                "--json",
                "--params-file",
                "config/cartpole.yaml",
                "--ros-args",
                "-p",
                "action.safe:=[0.25]",
            ];
            a.extend_from_slice(&extra);
            dream_mpc_tests::spawn_on(std::path::Path::new(&bin), domain, &a)
        }
    };
    eprintln!(
        "[ros_soak] controller pid {} on domain {domain}, MALLOC_ARENA_MAX={}",
        ctl.id(),
        std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| "unset".into())
    );
    let pid = ctl.id();
    let period = Duration::from_secs_f64(1.0 / RATE_HZ);
    // cart at the centre, pole hanging (cos = -1), at rest
    let good = [0.0, -1.0, 0.0, 0.0, 0.0];
    let is_safe = |x: f64| (x - SAFE).abs() < 1e-9;
    let planned = |x: f64| !is_safe(x);
    let t0 = Instant::now();
    while rec.first_after(t0, planned).is_none() && t0.elapsed() < Duration::from_secs(60) {
        robot.stream(&good, period, Duration::from_millis(50));
    }
    eprintln!(
        "[ros_soak] planning after {:?}; {ticks} ticks ({secs:.0} s)",
        t0.elapsed()
    );
    let start = Instant::now();
    let mut rss = Vec::new();
    let mut kinds: Vec<(f64, Rss)> = Vec::new();
    let mut csv_text = String::from("s,rss_kib,heap_kib,anon_kib,files_kib\n");
    let (mut to_safe, mut to_planning) = (Vec::new(), Vec::new());
    let mut k = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        // 10 s of good observations, then one fault
        robot.stream(
            &good,
            period,
            Duration::from_secs(10).min(Duration::from_secs_f64(
                (secs - start.elapsed().as_secs_f64()).max(0.0),
            )),
        );
        if let Some(r) = rss_kib(pid) {
            rss.push(r);
        }
        if let Some(r) = rss_by_kind(pid) {
            let t = start.elapsed().as_secs_f64();
            csv_text += &format!("{t:.1},{},{},{},{}\n", r.total, r.heap, r.anon, r.files);
            kinds.push((t, r));
        }
        if start.elapsed().as_secs_f64() >= secs {
            break;
        }
        if !faults_on {
            k += 1;
            continue;
        }
        match k % 3 {
            0 => {
                robot.send(&good);
                let last = Instant::now();
                std::thread::sleep(faults::WATCHDOG * 3);
                let resumed = Instant::now();
                robot.stream(&good, period, Duration::from_millis(200));
                if let Some(d) = rec.first_after(last, is_safe) {
                    to_safe.push(d.as_secs_f64() * 1e3);
                }
                if let Some(d) = rec.first_after(resumed, planned) {
                    to_planning.push(d.as_secs_f64() * 1e3);
                }
            }
            1 => {
                for _ in 0..5 {
                    robot.send(&[f64::NAN, -1.0, 0.0, 0.0, 0.0]);
                    std::thread::sleep(period);
                    robot.send(&[0.0, -1.0, 0.0]);
                    std::thread::sleep(period);
                }
            }
            _ => {
                robot.stream(&good, period / 10, Duration::from_millis(200));
            }
        }
        k += 1;
        let r = kinds.last().map(|x| x.1).unwrap_or_default();
        eprintln!(
            "[ros_soak] {:.0} s, RSS {} KiB (heap {}, anonymous {}, files {})",
            start.elapsed().as_secs_f64(),
            rss.last().copied().unwrap_or(0),
            r.heap,
            r.anon,
            r.files
        );
    }
    if let Some(path) = &csv {
        std::fs::write(path, &csv_text).unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
    let (s, _) = faults::stop(ctl);
    let f = |k: &str| s[k].as_f64().unwrap_or(f64::NAN);
    let cpu = dream_mpc_tests::cpu_model();
    let injected = if faults_on { k } else { 0 };
    println!("\nSoak: {ticks} ticks requested, Dream-MPC cart-pole at 100 Hz over DDS (domain {domain}), CPU {cpu}, {injected} faults injected\n");
    println!("| ticks | planned | stale | non-finite | wrong size | deadline misses | overruns | latency p50 / p99 / max ms | jitter p99 / max ms |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} |",
        f("ticks"),
        f("planned"),
        f("stale"),
        f("non_finite"),
        f("wrong_size"),
        f("deadline_misses"),
        f("overruns"),
        f("latency_p50_s") * 1e3,
        f("latency_p99_s") * 1e3,
        f("latency_max_s") * 1e3,
        f("jitter_p99_s") * 1e3,
        f("jitter_max_s") * 1e3
    );
    let (first, last, max) = (
        rss.first().copied().unwrap_or(0),
        rss.last().copied().unwrap_or(0),
        rss.iter().copied().max().unwrap_or(0),
    );
    println!(
        "\nRSS every 10 s ({} samples): first {first} KiB, last {last} KiB, max {max} KiB",
        rss.len()
    );
    // Slopes after the first 2 minutes (start-up: discovery, first plans).
    let late: Vec<&(f64, Rss)> = kinds.iter().filter(|(t, _)| *t >= 120.0).collect();
    let t: Vec<f64> = late.iter().map(|x| x.0).collect();
    let per = |f: fn(&Rss) -> u64| {
        let y: Vec<f64> = late.iter().map(|x| f(&x.1) as f64).collect();
        slope(&t, &y)
    };
    println!(
        "RSS slope after 120 s ({} samples), KiB/s: total {:.3}, heap {:.3}, anonymous {:.3}, files {:.3}",
        late.len(),
        per(|r| r.total),
        per(|r| r.heap),
        per(|r| r.anon),
        per(|r| r.files)
    );
    println!(
        "gap recovery ({} gaps), ms median / max: to safe {}, to planning {}",
        to_safe.len(),
        med_max(&mut to_safe),
        med_max(&mut to_planning)
    );
}
