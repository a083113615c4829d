//! Soak benchmark (not a test; issue 13 item 6): Dream-MPC on the shipped
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

fn med_max(v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return "–".into();
    }
    format!("{:.1} / {:.1}", v[v.len() / 2], v[v.len() - 1])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ticks: u64 = args
        .iter()
        .position(|a| a == "--ticks")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let secs = ticks as f64 / RATE_HZ;
    let domain = 2 + (std::process::id() % 4) as u16 * 2;
    let rec = Recorder::new(domain);
    let robot = Robot::new(domain);
    let ctl = faults::controller_with(
        domain,
        "config/cartpole.yaml",
        &[
            "-p",
            "control_rate_hz:=100.0",
            "-p",
            "on_planner_fault:=continue",
        ],
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
        if start.elapsed().as_secs_f64() >= secs {
            break;
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
        eprintln!(
            "[ros_soak] {:.0} s, RSS {} KiB",
            start.elapsed().as_secs_f64(),
            rss.last().copied().unwrap_or(0)
        );
    }
    let (s, _) = faults::stop(ctl);
    let f = |k: &str| s[k].as_f64().unwrap_or(f64::NAN);
    let cpu = dream_mpc_tests::cpu_model();
    println!("\nSoak: {ticks} ticks requested, Dream-MPC cart-pole at 100 Hz over DDS, CPU {cpu}, {k} faults injected\n");
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
    println!(
        "gap recovery ({} gaps), ms median / max: to safe {}, to planning {}",
        to_safe.len(),
        med_max(&mut to_safe),
        med_max(&mut to_planning)
    );
}
