//! Benchmark (not a test): the 100 Hz cart-pole loop (`config/cartpole.yaml`,
//! the shipped model, Dream-MPC) under `dream-mpc run` over real DDS on
//! localhost, in four conditions of `DREAM_MPC_BENCH_SECS` seconds each
//! (default 60):
//!
//! | condition | load | `realtime.*` |
//! |---|---|---|
//! | idle/normal | none | none |
//! | load/normal | CPU hog per core + memory hog | none |
//! | idle/rt | none | priority 50 (SCHED_FIFO), cpu = last core, lock_memory |
//! | load/rt | CPU hog per core + memory hog | same |
//!
//! Load is started and stopped by the benchmark (child processes of this
//! binary, each bounded to the condition's length + 5 s and killed at its
//! end): one busy-looping process per core, and one memory hog that holds
//! min(MemFree + 512 MiB, `DREAM_MPC_BENCH_HOG_MIB`, MemAvailable / 2)
//! (default cap 3072 MiB) of touched anonymous memory, so the kernel must
//! reclaim page cache to give it, and then keeps reclaim going by
//! re-touching its pages, freeing and re-allocating a quarter of them and
//! streaming the files under `target/` through the page cache.
//!
//! Reported per condition, from the controller's own JSON report: tick
//! latency p50/p99/max, release jitter p99/max, deadline misses, skipped
//! periods, ticks without a plan; from /proc/<pid>/stat of the controller:
//! minor and major page faults between its first action (start-up done)
//! and the end of the condition; and the real-time settings in force.
//!
//!     cargo bench -p dream-mpc-tests --bench realtime
//!     DREAM_MPC_BENCH_SECS=5 cargo bench -p dream-mpc-tests --bench realtime   # smoke run
//!
//! `DREAM_MPC_BENCH_ONLY=idle/rt,load/rt` runs only those conditions;
//! `DREAM_MPC_BENCH_RT=realtime.priority:=50,realtime.cpu:=0` replaces the
//! real-time settings of the `rt` conditions.
//!
//! The controller binary is built in the benchmark's own profile
//! (`--profile dev` uses target/debug, whose `dream-mpc` crate is built at
//! opt-level 3).

use dream_mpc::msgs::Float64MultiArray;
use dream_mpc::ros::realtime::page_faults_of;
use dream_mpc_tests::peer::Peer;
use dream_mpc_tests::{bins, env_or, read_output, root, spawn_on};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOG_ENV: &str = "DREAM_MPC_REALTIME_BENCH_HOG";
const CONFIG: &str = "config/cartpole.yaml";
const RATE_HZ: f64 = 100.0;
const RT_PRIORITY: u8 = 50;

fn meminfo_mib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib >> 10)
}

// ---------------------------------------------------------------------------
// Load (run as child processes of this binary)
// ---------------------------------------------------------------------------

fn cpu_hog(until: Instant) {
    let mut x = 1u64;
    while Instant::now() < until {
        for _ in 0..100_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        std::hint::black_box(x);
    }
}

fn touch(v: &mut [u8], k: u8) {
    for i in (0..v.len()).step_by(4096) {
        v[i] = k;
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>, limit: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if out.len() >= limit {
            return;
        }
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => files_under(&p, out, limit),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

fn mem_hog(mib: usize, until: Instant) {
    const CHUNK: usize = 64 << 20;
    let n = (mib << 20) / CHUNK;
    let mut chunks: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            let mut v = vec![0u8; CHUNK];
            touch(&mut v, 1);
            v
        })
        .collect();
    let mut files = Vec::new();
    files_under(&root().join("target"), &mut files, 100_000);
    let mut buf = vec![0u8; 1 << 20];
    let (mut k, mut f) = (0u8, 0usize);
    while Instant::now() < until {
        k = k.wrapping_add(1);
        for c in chunks.iter_mut() {
            touch(c, k);
        }
        // free and re-allocate a quarter: fresh pages must come from reclaim
        for c in chunks.iter_mut().take(n / 4) {
            *c = Vec::new();
            let mut v = vec![0u8; CHUNK];
            touch(&mut v, k);
            *c = v;
        }
        // stream ~256 MiB of files through the page cache
        let mut read = 0usize;
        while read < (256 << 20) && !files.is_empty() && Instant::now() < until {
            if let Ok(mut fh) = std::fs::File::open(&files[f % files.len()]) {
                while let Ok(m) = fh.read(&mut buf) {
                    if m == 0 {
                        break;
                    }
                    read += m;
                }
            }
            f += 1;
        }
    }
}

struct Load {
    children: Vec<Child>,
    mem_mib: usize,
}

impl Load {
    fn start(secs: f64) -> Load {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cap: usize = env_or("DREAM_MPC_BENCH_HOG_MIB", 3072);
        let free = meminfo_mib("MemFree:") as usize;
        let avail = meminfo_mib("MemAvailable:") as usize;
        let mem_mib = (free + 512).min(cap).min(avail / 2).max(64);
        let until = format!("{}", secs + 5.0);
        let exe = std::env::current_exe().unwrap();
        let hog = |what: String| {
            Command::new(&exe)
                .env(HOG_ENV, what)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut children: Vec<Child> = (0..cores).map(|_| hog(format!("cpu:{until}"))).collect();
        children.push(hog(format!("mem:{until}:{mem_mib}")));
        Load { children, mem_mib }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// One condition
// ---------------------------------------------------------------------------

struct Row {
    name: &'static str,
    r: serde_json::Value,
    minor: u64,
    major: u64,
    load_mib: Option<usize>,
}

fn condition(bin: &Path, name: &'static str, load: bool, rt: bool, secs: f64, domain: u16) -> Row {
    let cfg = dream_mpc::ros::config::Config::from_params(
        dream_mpc::ros::config::Params::from_file(&root().join(CONFIG)).unwrap(),
    )
    .unwrap();
    let mut peer = Peer::new(domain, "realtime_bench");
    let obs_pub = peer.observations();
    let act_sub = peer.actions();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args: Vec<String> = [
        "run",
        "--json",
        "--params-file",
        CONFIG,
        "--ros-args",
        "-p",
        &format!("control_rate_hz:={RATE_HZ}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if rt {
        let given = std::env::var("DREAM_MPC_BENCH_RT").ok();
        let settings: Vec<String> = match &given {
            Some(s) => s.split(',').map(str::to_string).collect(),
            None => vec![
                format!("realtime.priority:={RT_PRIORITY}"),
                format!("realtime.cpu:={}", cores - 1),
                "realtime.lock_memory:=true".to_string(),
            ],
        };
        for a in settings {
            args.push("-p".into());
            args.push(a);
        }
    }
    let mut child = spawn_on(bin, domain, &args);
    let pid = child.id().to_string();
    let t0 = Instant::now();
    while act_sub.take().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    // start-up is done: count faults from here
    let (minor0, major0) = page_faults_of(&pid);
    let hogs = load.then(|| Load::start(secs));
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let x: Vec<f64> = (0..cfg.control.observation_size)
        .map(|i| 0.1 * i as f64)
        .collect();
    while Instant::now() < end {
        let _ = obs_pub.publish(Float64MultiArray::vector("observation", x.clone()));
        while let Ok(Some(_)) = act_sub.take() {}
        std::thread::sleep(Duration::from_millis(2));
    }
    let (minor1, major1) = page_faults_of(&pid);
    let load_mib = hogs.as_ref().map(|h| h.mem_mib);
    drop(hogs);
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let st = child.wait().unwrap();
    let (out, err) = read_output(&mut child);
    assert!(st.success(), "{name}: controller failed: {err}");
    for l in err
        .lines()
        .filter(|l| l.contains("realtime") || l.contains("warning"))
    {
        println!("  {name}: {l}");
    }
    let r: serde_json::Value = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    drop(peer);
    Row {
        name,
        r,
        minor: minor1.saturating_sub(minor0),
        major: major1.saturating_sub(major0),
        load_mib,
    }
}

fn main() {
    if let Ok(spec) = std::env::var(HOG_ENV) {
        let parts: Vec<&str> = spec.split(':').collect();
        let until = Instant::now() + Duration::from_secs_f64(parts[1].parse().unwrap());
        match parts[0] {
            "cpu" => cpu_hog(until),
            _ => mem_hog(parts[2].parse().unwrap(), until),
        }
        return;
    }
    let secs: f64 = env_or("DREAM_MPC_BENCH_SECS", 60.0);
    let bin = bins().0.clone();
    let domain = 200 + (std::process::id() % 10) as u16;
    println!(
        "realtime: {CONFIG} at {RATE_HZ} Hz, {secs} s per condition, domain {domain}, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut rows = Vec::new();
    for (name, load, rt) in [
        ("idle/normal", false, false),
        ("load/normal", true, false),
        ("idle/rt", false, true),
        ("load/rt", true, true),
    ] {
        if let Ok(only) = std::env::var("DREAM_MPC_BENCH_ONLY") {
            if !only.split(',').any(|o| o == name) {
                continue;
            }
        }
        let row = condition(&bin, name, load, rt, secs, domain);
        println!("  {name}: done ({} ticks)", row.r["ticks"]);
        rows.push(row);
    }
    println!();
    println!(
        "| condition | ticks | tick p50 ms | tick p99 ms | tick max ms | jitter p99 us | jitter max us | planner cut by deadline | deadline misses | skipped periods | ticks without plan | minor faults | major faults | settings in force |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        let r = &row.r;
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let settings = if r["rt_priority"].as_u64().unwrap_or(0) > 0
            || !r["rt_cpu"].is_null()
            || r["rt_memory_locked"].as_bool().unwrap_or(false)
        {
            format!(
                "FIFO {}, cpu {}, locked {}",
                r["rt_priority"], r["rt_cpu"], r["rt_memory_locked"]
            )
        } else {
            "none".to_string()
        };
        let name = match row.load_mib {
            Some(m) => format!("{} (mem hog {m} MiB)", row.name),
            None => row.name.to_string(),
        };
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {settings} |",
            r["ticks"],
            f("latency_p50_s") * 1e3,
            f("latency_p99_s") * 1e3,
            f("latency_max_s") * 1e3,
            f("jitter_p99_s") * 1e6,
            f("jitter_max_s") * 1e6,
            r["cut_by_deadline"],
            r["deadline_misses"],
            r["overruns"],
            f("ticks") - f("planned"),
            row.minor,
            row.major,
        );
    }
}
