//! Benchmark (not a test) of `dream-mpc run` under hostile DDS traffic on
//! localhost: the gap distribution of the action
//! stream seen by a DDS subscriber (p50/p99/max) and the node's resident
//! memory (before, peak, end), in three runs of `DREAM_MPC_BENCH_SECS`
//! seconds each (default 10), the controller at 100 Hz on
//! `config/plumbing.yaml` answering a 100 Hz valid observation stream:
//! - `idle`: no attack;
//! - `forged`: 4 forged DATA_FRAGs (1,096 bytes, undiscovered GUID prefix,
//!   1 GiB claimed each) every 100 ms to the node's observation reader;
//! - `huge`: a matched peer publishing 10^6-float observations at 20 Hz;
//! - `services`: 4 forged DATA_FRAGs (1 GiB claimed each) from a matched
//!   writer to each of the six parameter-service request readers;
//! - `params`: `set_parameters` requests every 100 ms, in turn a 10 KB
//!   unknown name, 2,000 unknown names, a 1 MB name.
//!
//! ```text
//! cargo bench -p dream-mpc-tests --bench dds_attack
//! DREAM_MPC_BENCH_SECS=5 DREAM_MPC_BENCH_SCENARIOS=idle,huge \
//!   DREAM_MPC_BIN=/path/to/unpatched/dream-mpc cargo bench -p dream-mpc-tests --bench dds_attack
//! ```
//!
//! `DREAM_MPC_BIN` runs another controller binary (e.g. one built without the
//! RustDDS patch; leave `forged` out then: every forged datagram costs such a
//! node 1 GiB). All traffic goes to 127.0.0.1, bounded in count and time.

use dream_mpc_tests::env_or;
use dream_mpc_tests::hostile::{self, run_with_attack};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn controller_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DREAM_MPC_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let release = dir.file_name().map(|n| n == "release").unwrap_or(false);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(dream_mpc_tests::root())
        .args(["build", "-q", "-p", "dream-mpc", "--bins"]);
    if release {
        cmd.arg("--release");
    }
    assert!(cmd.status().unwrap().success());
    dir.join("dream-mpc")
}

fn main() {
    let secs: f64 = env_or("DREAM_MPC_BENCH_SECS", 10.0);
    let scenarios = std::env::var("DREAM_MPC_BENCH_SCENARIOS")
        .unwrap_or_else(|_| "idle,forged,huge,services,params".into());
    let bin = controller_bin();
    let dur = Duration::from_secs_f64(secs);
    println!(
        "dds_attack: {secs} s per scenario, controller {}",
        bin.display()
    );
    for (k, name) in scenarios.split(',').enumerate() {
        let d = 229 + (k as u16 % 4);
        let stop = Arc::new(AtomicBool::new(false));
        let mut worker: Option<std::thread::JoinHandle<usize>> = None;
        let run = run_with_attack(&bin, d, Duration::from_secs(2), dur, |ctx, _pid| {
            let stop = stop.clone();
            match name {
                "idle" => {}
                "forged" => {
                    let dp = ctx.domain_participant();
                    let own = [dp.participant_id()];
                    let target = hostile::find_reader(
                        &dp,
                        d,
                        "rt/observation",
                        &own,
                        Duration::from_secs(5),
                    )
                    .expect("observation reader not discovered");
                    worker = Some(std::thread::spawn(move || {
                        let prefix = hostile::random_prefix();
                        let t0 = Instant::now();
                        let (mut sent, mut sn) = (0usize, 1u32);
                        while t0.elapsed() < dur && !stop.load(Ordering::SeqCst) && sn < 100_000 {
                            sent += hostile::send_forged(
                                &target,
                                prefix,
                                hostile::USER_WRITER,
                                sn,
                                4,
                                1 << 30,
                            )
                            .unwrap();
                            sn += 4;
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        sent
                    }));
                }
                "services" => {
                    // forged DATA_FRAGs from a matched writer to the six
                    // parameter-service request readers, 4 each, 1 GiB claimed
                    let topics = [
                        ("list_parameters", "ListParameters"),
                        ("get_parameters", "GetParameters"),
                        ("get_parameter_types", "GetParameterTypes"),
                        ("describe_parameters", "DescribeParameters"),
                        ("set_parameters", "SetParameters"),
                        ("set_parameters_atomically", "SetParametersAtomically"),
                    ]
                    .iter()
                    .map(|(n, t)| {
                        (
                            format!("rq/dream_mpc/{n}Request"),
                            format!("rcl_interfaces::srv::dds_::{t}_Request_"),
                        )
                    })
                    .collect();
                    worker = Some(hostile::forge_from_matched_writers(d, topics, 4, 1 << 30));
                }
                "params" => {
                    worker = Some({
                        let f = hostile::flood_parameter_requests(
                            d,
                            2_000,
                            Duration::from_millis(100),
                            dur,
                            u32::MAX,
                        );
                        std::thread::spawn(move || f.join().unwrap().0)
                    });
                }
                "huge" => {
                    worker = Some(hostile::flood_observations(
                        d,
                        1_000_000,
                        Duration::from_millis(50),
                        dur,
                        u32::MAX,
                        stop,
                    ));
                }
                other => panic!("unknown scenario {other}"),
            }
        });
        stop.store(true, Ordering::SeqCst);
        let n = worker.map(|w| w.join().unwrap()).unwrap_or(0);
        const MIB: f64 = 1024.0 * 1024.0;
        println!(
            "{name:>6}: {n:>5} sent; action gaps p50 {:.1} ms p99 {:.1} ms max {:.1} ms ({} gaps); \
             RSS before {:.1} MiB peak {:.1} MiB end {:.1} MiB; node: {}",
            hostile::quantile(&run.gaps, 0.5) * 1e3,
            hostile::quantile(&run.gaps, 0.99) * 1e3,
            run.max_gap() * 1e3,
            run.gaps.len(),
            run.rss_before as f64 / MIB,
            run.rss_max as f64 / MIB,
            run.rss_end as f64 / MIB,
            {
                let d: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("dds:")).collect();
                let refused = run
                    .diagnostics
                    .get("parameter_requests_refused")
                    .copied()
                    .unwrap_or(0.0);
                format!(
                    "{}; parameter requests refused {refused}",
                    if d.is_empty() { "no drops reported".to_string() } else { d.join(" | ") }
                )
            }
        );
    }
}
