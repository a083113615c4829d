//! Benchmark (not a test): recovery times of `dream-mpc run` from faults
//! injected over DDS on localhost, the scenarios of
//! `dream_mpc_tests::faults` (also asserted, with margins, by
//! `tests/ros_faults.rs`), repeated `DREAM_MPC_BENCH_REPS` times (default
//! 5) on fresh controllers:
//!
//! - observation faults against one controller: a gap of 5 watchdog
//!   periods, a burst at 10x the control rate, duplicated and
//!   out-of-order messages, NaN and wrong-sized messages interleaved;
//! - the robot process (`dream-mpc-sim serve`) SIGKILLed and restarted;
//! - the controller SIGKILLed and restarted (start-up to first plan);
//! - a CPU hog pinned to the control thread's core (2 s).
//!
//! Printed as a markdown table: median and max over the repetitions of
//! "to safe" (fault to the first safe action received by a peer) and "to
//! planning" (end of the fault to the first planned action received), plus
//! the CPU hog's deadline misses, overruns and jitter.
//!
//!     cargo bench -p dream-mpc-tests --bench ros_faults --profile dev
//!     DREAM_MPC_BENCH_REPS=2 cargo bench -p dream-mpc-tests --bench ros_faults --profile dev
//!
//! (`--profile dev` uses the debug binaries, whose controller crate is
//! built at opt-level 3; the plumbing law costs microseconds either way,
//! so the times are DDS, scheduling and watchdog times.)

use dream_mpc_tests::env_or;
use dream_mpc_tests::faults::{self, Recovery};
use std::collections::BTreeMap;
use std::time::Duration;

fn ms(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

fn stats(v: &mut [f64]) -> String {
    let v: Vec<f64> = {
        let mut f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        f.sort_by(f64::total_cmp);
        f
    };
    if v.is_empty() {
        return "–".into();
    }
    format!("{:.1} / {:.1}", v[v.len() / 2], v[v.len() - 1])
}

fn main() {
    let reps: usize = env_or("DREAM_MPC_BENCH_REPS", 5);
    let domain = 11 + (std::process::id() % 4) as u16 * 4;
    let mut rows: BTreeMap<&'static str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut order: Vec<&'static str> = Vec::new();
    let mut add = |r: &Recovery| {
        if !order.contains(&r.fault) {
            order.push(r.fault);
        }
        let e = rows.entry(r.fault).or_default();
        e.0.push(ms(r.to_safe));
        e.1.push(ms(r.to_planning));
    };
    let mut hog = Vec::new();
    for rep in 0..reps {
        eprintln!("[ros_faults] repetition {}/{reps}", rep + 1);
        let (rs, inj, s, _, notes) = faults::observation_faults(domain);
        eprintln!(
            "  injected {inj:?}; counters non_finite {} wrong_size {} stale {}; {notes:?}",
            s["non_finite"], s["wrong_size"], s["stale"]
        );
        rs.iter().for_each(&mut add);
        add(&faults::robot_killed_and_restarted(domain + 1).0);
        add(&faults::controller_killed_and_restarted(domain + 2).0);
        let s = faults::cpu_hog(domain + 3, Duration::from_secs(2));
        hog.push(s);
    }
    let cpu = dream_mpc_tests::cpu_model();
    println!("\nFault recovery over DDS on localhost, {reps} repetitions, CPU {cpu}");
    println!("(watchdog 100 ms, control period 10 ms; times in ms, median / max)\n");
    println!("| fault | fault -> safe action | fault ends -> planning |");
    println!("|---|---|---|");
    for f in &order {
        let (s, p) = rows.get_mut(f).unwrap();
        println!("| {f} | {} | {} |", stats(s), stats(p));
    }
    println!("\nCPU hog pinned to the control thread's core (2 s at 100 Hz), per repetition:\n");
    println!("| planned / ticks | deadline misses | overruns | jitter p99 ms | jitter max ms | latency max ms |");
    println!("|---|---|---|---|---|---|");
    for s in &hog {
        let f = |k: &str| s[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {} / {} | {} | {} | {:.2} | {:.2} | {:.3} |",
            f("planned"),
            f("ticks"),
            f("deadline_misses"),
            f("overruns"),
            f("jitter_p99_s") * 1e3,
            f("jitter_max_s") * 1e3,
            f("latency_max_s") * 1e3
        );
    }
}
