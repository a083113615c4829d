//! Benchmark (not a test) of `dream-mpc run` over real DDS on localhost:
//! the control loop at 100 Hz and at 500 Hz, `DREAM_MPC_BENCH_SECS` seconds
//! each (default 60): achieved rate, tick latency p50/p99/max, period jitter
//! p99, deadline misses and skipped periods (from the controller's own
//! report), and observation-to-action latency across DDS measured by this
//! process acting as the robot: it publishes an observation with a unique
//! value (one in flight, the next 2-12 ms after the answer) and times the
//! first action that answers it. That latency includes waiting for the
//! controller's next tick (up to one period, about half on average), since
//! the loop runs at its own fixed rate; the minimum approaches DDS transit.
//!
//!     cargo bench -p dream-mpc-tests --bench ros_loop
//!     DREAM_MPC_BENCH_SECS=10 cargo bench -p dream-mpc-tests --bench ros_loop
//!
//! By default the `linear` action source (`config/plumbing.yaml`): the
//! plumbing's own cost, and the obs->action latency (each answer is
//! recognizable). With a planner config the tick latency is the planner's:
//!
//!     DREAM_MPC_BENCH_CONFIG=config/cartpole.yaml cargo bench -p dream-mpc-tests --bench ros_loop
//!
//! Then this process publishes a fixed observation every 2 ms (the planner's
//! answer cannot be told apart, so no obs->action latency is reported) and
//! the controller's report gives the rate, tick latency and misses.

use dream_mpc::msgs::Float64MultiArray;
use dream_mpc_tests::peer::Peer;
use dream_mpc_tests::{bins, env_or, read_output, root};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((p * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)]
}

fn main() {
    let secs: f64 = env_or("DREAM_MPC_BENCH_SECS", 60.0);
    let bin = bins().0.clone();
    let domain = 220 + (std::process::id() % 10) as u16;
    let config =
        std::env::var("DREAM_MPC_BENCH_CONFIG").unwrap_or_else(|_| "config/plumbing.yaml".into());
    let cfg = dream_mpc::ros::config::Config::from_params(
        dream_mpc::ros::config::Params::from_file(&root().join(&config)).unwrap(),
    )
    .unwrap();
    let linear = cfg.control.action_source == dream_mpc::ros::config::SourceKind::Linear;
    println!(
        "ros_loop: {secs} s per rate, domain {domain}, {config} (action source {:?}, planner {}, budget {:?})",
        cfg.control.action_source, cfg.control.planner, cfg.control.budget
    );
    for rate in [100.0, 500.0] {
        let mut peer = Peer::new(domain, "ros_loop_bench");
        let obs_pub = peer.observations();
        let act_sub = peer.actions();
        let mut child = Command::new(&bin)
            .current_dir(root())
            .env("ROS_DOMAIN_ID", domain.to_string())
            .args([
                "run",
                "--json",
                "--params-file",
                &config,
                "--duration-s",
                &format!("{}", secs + 2.0),
                "--ros-args",
                "-p",
                &format!("control_rate_hz:={rate}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // wait for the controller, then ping
        let t0 = Instant::now();
        while act_sub.take().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut lat = Vec::new();
        let (mut k, mut pending): (u64, Option<(f64, Instant)>) = (0, None);
        let mut next_ping = Instant::now();
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let mut lost = 0u64;
        // one ping in flight at a time; the next goes out 2-12 ms (seeded
        // uniform) after the answer, so pings land at every phase of the
        // control period instead of locking to it
        let mut rng = dream_mpc::rng::Rng::new(7);
        while Instant::now() < end {
            let now = Instant::now();
            if let Some((_, at)) = pending {
                if now.duration_since(at) > Duration::from_millis(100) {
                    lost += 1;
                    pending = None;
                    next_ping = now;
                }
            }
            if !linear {
                // planner: a steady observation stream; answers are not matched
                if now >= next_ping {
                    let x: Vec<f64> = (0..cfg.control.observation_size)
                        .map(|i| 0.1 * i as f64)
                        .collect();
                    let _ = obs_pub.publish(Float64MultiArray::vector("observation", x));
                    next_ping = now + Duration::from_millis(2);
                }
                while let Ok(Some(_)) = act_sub.take() {}
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            if pending.is_none() && now >= next_ping {
                k += 1;
                let x = 0.001 * ((k % 200) + 1) as f64;
                let _ = obs_pub.publish(Float64MultiArray::vector("observation", vec![x, 0.0]));
                pending = Some(((-4.0 * x) as f32 as f64, Instant::now()));
            }
            while let Ok(Some((m, _))) = act_sub.take() {
                if let Some((want, at)) = pending {
                    if (m.data[0] - want).abs() < 1e-6 {
                        lat.push(at.elapsed().as_secs_f64());
                        pending = None;
                        next_ping =
                            Instant::now() + Duration::from_secs_f64(rng.uniform_in(0.002, 0.012));
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        let st = child.wait().unwrap();
        let (out, _) = read_output(&mut child);
        assert!(st.success());
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let f = |k: &str| v[k].as_f64().unwrap();
        let (min, p50, p99, max) = (
            pct(&mut lat, 0.0),
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
            pct(&mut lat, 1.0),
        );
        println!(
            "rate {rate:>5} Hz: achieved {:.2} Hz over {:.1} s ({} ticks); tick p50 {:.1} us p99 {:.1} us max {:.1} us (whole run); \
             jitter p99 {:.1} us; deadline misses {} skipped periods {}; \
             obs->action over DDS min {:.3} ms p50 {:.3} ms p99 {:.3} ms max {:.3} ms ({} answered, {} unanswered within 100 ms)",
            f("rate_hz"),
            f("elapsed_s"),
            f("ticks"),
            f("latency_p50_s") * 1e6,
            f("latency_p99_s") * 1e6,
            f("latency_max_s") * 1e6,
            f("jitter_p99_s") * 1e6,
            f("deadline_misses"),
            f("overruns"),
            min * 1e3,
            p50 * 1e3,
            p99 * 1e3,
            max * 1e3,
            lat.len(),
            lost
        );
        drop(peer);
    }
}
