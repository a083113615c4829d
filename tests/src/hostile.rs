//! Hostile DDS traffic for the robustness tests and the `dds_attack`
//! benchmark: forged RTPS DATA_FRAG datagrams, the
//! controller's resident memory, and the gaps of the action stream.
//!
//! All traffic goes to 127.0.0.1 only, and every sender is bounded in count
//! and time by its caller.

use crate::peer::{diagnostics, float_topic, participant};
use crate::{spawn_controller_with, wait_bounded};
use dream_mpc::msgs::Float64MultiArray;
use dream_mpc::ros::config::Reliability;
use ros2_client::dds::rustdds::DomainParticipant;
use ros2_client::{Context, Node, Subscription};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: f64 = 1024.0 * 1024.0;

/// Resident set size of process `pid` in bytes (VmRSS of /proc/<pid>/status).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Where a remote reader listens: its GUID (prefix + entity id) and the UDP
/// ports of its unicast locators.
#[derive(Clone, Debug)]
pub struct ReaderTarget {
    pub guid: [u8; 16],
    pub ports: Vec<u16>,
}

/// Learn the reader of DDS topic `topic` (e.g. `rt/observation`) from
/// discovery, as any peer on the network can: its GUID and unicast ports.
/// When the reader announces no locator of its own, the RTPS well-known user
/// unicast port of its participant (spec 9.6.1.1: 7400 + 250 d + 11 + 2 p)
/// for participant ids 0..8 other than `skip_participant_ids`.
pub fn find_reader(
    dp: &DomainParticipant,
    domain: u16,
    topic: &str,
    skip_participant_ids: &[u16],
    timeout: Duration,
) -> Option<ReaderTarget> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if let Some(r) = dp
            .discovered_readers()
            .into_iter()
            .find(|r| r.subscription_topic_data.topic_name == topic)
        {
            let guid = r.reader_proxy.remote_reader_guid.to_bytes();
            let mut ports: Vec<u16> = r
                .reader_proxy
                .unicast_locator_list
                .iter()
                .map(|l| SocketAddr::from(*l).port())
                .filter(|p| *p != 0)
                .collect();
            if ports.is_empty() {
                ports = (0..8u16)
                    .filter(|p| !skip_participant_ids.contains(p))
                    .map(|p| 7400 + 250 * domain + 11 + 2 * p)
                    .collect();
            }
            ports.sort_unstable();
            ports.dedup();
            return Some(ReaderTarget { guid, ports });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Size of one forged datagram: RTPS header (20) + INFO_DST (16) +
/// DATA_FRAG header and fields (36) + one 1,024-byte fragment.
pub const FORGED_LEN: usize = 1096;

/// A user-defined writer entity id (never announced by the forger).
pub const USER_WRITER: [u8; 4] = [0x00, 0x00, 0x01, 0x03];
/// The built-in SPDP participant writer and reader entity ids (RTPS 9.3.1.3).
pub const SPDP_WRITER: [u8; 4] = [0x00, 0x01, 0x00, 0xc2];
pub const SPDP_READER: [u8; 4] = [0x00, 0x01, 0x00, 0xc7];

/// One RTPS datagram holding INFO_DST and a DATA_FRAG (little endian) from
/// writer `src_prefix`:`writer` to the reader `dst`, sequence number `sn`,
/// claiming a sample of `claimed` bytes in 1,024-byte fragments and carrying
/// fragment 1.
pub fn forged_data_frag(
    src_prefix: [u8; 12],
    writer: [u8; 4],
    dst: &[u8; 16],
    sn: u32,
    claimed: u32,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(FORGED_LEN);
    m.extend_from_slice(b"RTPS");
    m.extend_from_slice(&[2, 4]); // protocol version 2.4
    m.extend_from_slice(&[0x01, 0x0f]); // vendor id (RustDDS)
    m.extend_from_slice(&src_prefix);
    // INFO_DST: id 0x0e, flags E, length 12, destination GUID prefix
    m.extend_from_slice(&[0x0e, 0x01]);
    m.extend_from_slice(&12u16.to_le_bytes());
    m.extend_from_slice(&dst[..12]);
    // DATA_FRAG: id 0x16, flags E, length 32 + payload
    let frag = 1024u16;
    m.extend_from_slice(&[0x16, 0x01]);
    m.extend_from_slice(&(32 + frag).to_le_bytes());
    m.extend_from_slice(&0u16.to_le_bytes()); // extra flags
    m.extend_from_slice(&28u16.to_le_bytes()); // octets to inline QoS
    m.extend_from_slice(&dst[12..16]); // reader entity id
    m.extend_from_slice(&writer); // writer entity id
    m.extend_from_slice(&0i32.to_le_bytes()); // writer SN high
    m.extend_from_slice(&sn.to_le_bytes()); // writer SN low
    m.extend_from_slice(&1u32.to_le_bytes()); // fragment starting number
    m.extend_from_slice(&1u16.to_le_bytes()); // fragments in submessage
    m.extend_from_slice(&frag.to_le_bytes()); // fragment size
    m.extend_from_slice(&claimed.to_le_bytes()); // sample size
    m.extend_from_slice(&[0x00, 0x01, 0x00, 0x00]); // CDR_LE encapsulation
    m.resize(FORGED_LEN, 0xa5);
    m
}

/// A GUID prefix no participant announced (seeded by time, pid and a
/// call counter: distinct on every call).
pub fn random_prefix() -> [u8; 12] {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let k = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut x = t ^ ((std::process::id() as u64) << 32) ^ 0x9e37_79b9_7f4a_7c15 ^ (k << 48);
    let mut p = [0u8; 12];
    for b in p.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    p
}

/// The SPDP (participant discovery) reader of the participant that holds
/// `user_reader`, at its metatraffic unicast ports: with RustDDS' well-known
/// ports (spec 9.6.1.1) one below the user unicast port.
pub fn spdp_reader_of(user_reader: &ReaderTarget) -> ReaderTarget {
    let mut guid = user_reader.guid;
    guid[12..].copy_from_slice(&SPDP_READER);
    ReaderTarget {
        guid,
        ports: user_reader.ports.iter().map(|p| p - 1).collect(),
    }
}

/// Send `count` forged DATA_FRAGs from `writer` (sequence numbers
/// `first_sn..`) claiming `claimed` bytes each, to every port of `target` on
/// 127.0.0.1. Returns the number of datagrams sent.
pub fn send_forged(
    target: &ReaderTarget,
    src_prefix: [u8; 12],
    writer: [u8; 4],
    first_sn: u32,
    count: u32,
    claimed: u32,
) -> std::io::Result<usize> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    let mut sent = 0;
    for k in 0..count {
        let pkt = forged_data_frag(src_prefix, writer, &target.guid, first_sn + k, claimed);
        for port in &target.ports {
            sock.send_to(&pkt, ("127.0.0.1", *port))?;
            sent += 1;
        }
    }
    Ok(sent)
}

/// Gaps between consecutive arrival times, in seconds.
pub fn gaps(times: &[Instant]) -> Vec<f64> {
    times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect()
}

/// The `p` quantile (nearest rank) of `v`; NaN when empty.
pub fn quantile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((p * (s.len() - 1) as f64).round() as usize).min(s.len() - 1)]
}

/// A Float64MultiArray topic, reliable, depth 1.
fn topic(node: &mut Node, name: &str) -> ros2_client::dds::rustdds::Topic {
    float_topic(node, name, Reliability::Reliable, 1)
}

/// What a run measured.
pub struct Run {
    pub rss_before: u64,
    pub rss_max: u64,
    pub rss_end: u64,
    /// gaps of the action stream from 0.5 s before the attack to the end of
    /// the measurement (which counts as an arrival)
    pub gaps: Vec<f64>,
    /// actions answering the valid observation after the attack began
    pub planned_after: usize,
    pub stderr: String,
    /// The node's run summary (one JSON line).
    pub stdout: String,
    /// Largest value of each numeric `/diagnostics` key seen during the run.
    pub diagnostics: std::collections::BTreeMap<String, f64>,
}

impl Run {
    pub fn growth(&self) -> u64 {
        self.rss_max.saturating_sub(self.rss_before)
    }
    pub fn max_gap(&self) -> f64 {
        self.gaps.iter().cloned().fold(0.0, f64::max)
    }
    pub fn report(&self, what: &str) {
        eprintln!(
            "{what}: RSS before {:.1} MiB, max {:.1} MiB (+{:.1} MiB), end {:.1} MiB; \
             action gaps p50 {:.1} ms p99 {:.1} ms max {:.1} ms ({} actions); \
             {} planned actions after the attack began",
            self.rss_before as f64 / MIB,
            self.rss_max as f64 / MIB,
            self.growth() as f64 / MIB,
            self.rss_end as f64 / MIB,
            quantile(&self.gaps, 0.5) * 1e3,
            quantile(&self.gaps, 0.99) * 1e3,
            self.max_gap() * 1e3,
            self.gaps.len(),
            self.planned_after,
        );
        for l in self.stderr.lines().filter(|l| l.starts_with("dds:")) {
            eprintln!("  node: {l}");
        }
    }
    /// The node's count of `what` ("oversized samples", "fragments ...").
    pub fn dropped(&self, after_word: &str) -> u64 {
        self.dropped_by("observation", after_word)
    }
    /// The count of `what` the node reported for its reader `reader`
    /// (`observation`, or a DDS topic such as
    /// `rq/dream_mpc/set_parametersRequest`).
    pub fn dropped_by(&self, reader: &str, after_word: &str) -> u64 {
        let head = format!("dds: {reader} reader dropped");
        let line = self
            .stderr
            .lines()
            .find(|l| l.starts_with(&head))
            .unwrap_or("");
        // "dds: observation reader dropped N oversized samples (...) and M fragments ..."
        let words: Vec<&str> = line.split_whitespace().collect();
        words
            .windows(2)
            .find(|w| w[1] == after_word)
            .and_then(|w| w[0].parse().ok())
            .unwrap_or(0)
    }
}

/// Run the controller `bin` with a valid observation stream from the test
/// (100 Hz); after `warm` start `attack` (given the node's pid and the
/// domain), keep going for `after`, then stop the node with SIGINT.
pub fn run_with_attack(
    bin: &Path,
    d: u16,
    warm: Duration,
    after: Duration,
    attack: impl FnOnce(&Context, u32),
) -> Run {
    run_with_attack_args(bin, d, &[], warm, after, attack)
}

/// [`run_with_attack`] with `extra` arguments to the controller (e.g.
/// `-p record:=...`).
pub fn run_with_attack_args(
    bin: &Path,
    d: u16,
    extra: &[&str],
    warm: Duration,
    after: Duration,
    attack: impl FnOnce(&Context, u32),
) -> Run {
    let (ctx, mut node) = participant(d, "hostile_dds_listener");
    let at = topic(&mut node, "/action");
    let ot = topic(&mut node, "/observation");
    let actions: Subscription<Float64MultiArray> = node.create_subscription(&at, None).unwrap();
    let obs = node
        .create_publisher::<Float64MultiArray>(&ot, None)
        .unwrap();
    let diags = diagnostics(&mut node);
    let mut diag_max = std::collections::BTreeMap::new();
    let read_diags = |diag_max: &mut std::collections::BTreeMap<String, f64>| {
        while let Ok(Some((m, _))) = diags.take() {
            for kv in m.status.iter().flat_map(|s| &s.values) {
                if let Ok(v) = kv.value.parse::<f64>() {
                    let e = diag_max.entry(kv.key.clone()).or_insert(v);
                    *e = e.max(v);
                }
            }
        }
    };
    let ctl = spawn_controller_with(bin, d, "config/plumbing.yaml", extra);
    let pid = ctl.id();

    let mut times: Vec<(Instant, f64)> = Vec::new();
    let t0 = Instant::now();
    let mut next_obs = t0;
    let mut next_rss = t0;
    let (mut rss_before, mut rss_max) = (0u64, 0u64);
    let mut attack = Some(attack);
    let mut t_attack = None;
    let end_after = |ta: Option<Instant>| ta.map(|t| t.elapsed() > after).unwrap_or(false);
    while !end_after(t_attack) && t0.elapsed() < warm + after + Duration::from_secs(20) {
        let now = Instant::now();
        while let Ok(Some((m, _))) = actions.take() {
            times.push((Instant::now(), m.data.first().cloned().unwrap_or(f64::NAN)));
        }
        read_diags(&mut diag_max);
        if now >= next_obs {
            let _ = obs.publish(Float64MultiArray::vector("observation", vec![0.1, 0.0]));
            next_obs = now + Duration::from_millis(10);
        }
        if now >= next_rss {
            let r = rss_bytes(pid).unwrap_or(0);
            if t_attack.is_some() {
                rss_max = rss_max.max(r);
            } else {
                rss_before = r;
            }
            next_rss = now + Duration::from_millis(20);
        }
        // attack once warm and the controller answers
        if t_attack.is_none() && now - t0 > warm && times.iter().any(|t| (t.1 + 0.4).abs() < 1e-6) {
            rss_max = rss_before;
            t_attack = Some(Instant::now());
            (attack.take().unwrap())(&ctx, pid);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let t_attack = t_attack.expect("the controller never answered the valid observation");
    let rss_end = rss_bytes(pid).unwrap_or(0);
    // the end of the window counts as an arrival: a stream that stopped
    // shows as one long last gap
    let t_end = Instant::now();
    let mut ctl = ctl;
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    // keep reading while it stops
    let t_sig = Instant::now();
    while ctl.try_wait().unwrap().is_none() && t_sig.elapsed() < Duration::from_secs(20) {
        while let Ok(Some(_)) = actions.take() {}
        read_diags(&mut diag_max);
        std::thread::sleep(Duration::from_millis(1));
    }
    let (st, stdout, stderr, _) = wait_bounded(ctl, Duration::from_secs(10));
    assert!(st.success(), "controller exit {st:?}: {stderr}");
    let from = t_attack - Duration::from_millis(500);
    let mut window: Vec<Instant> = times.iter().filter(|t| t.0 >= from).map(|t| t.0).collect();
    window.push(t_end);
    Run {
        rss_before,
        rss_max,
        rss_end,
        gaps: gaps(&window),
        planned_after: times
            .iter()
            .filter(|t| t.0 > t_attack && (t.1 + 0.4).abs() < 1e-6)
            .count(),
        stderr,
        stdout,
        diagnostics: diag_max,
    }
}

/// A matched peer (its own participant, so its sending cannot delay a
/// listener) publishing observations of `len` floats every `period` for at
/// most `dur` and `max_count` samples. Returns the number published.
pub fn flood_observations(
    domain: u16,
    len: usize,
    period: Duration,
    dur: Duration,
    max_count: u32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let (_ctx, mut node) = participant(domain, "hostile_dds_flood");
        let ot = topic(&mut node, "/observation");
        let p = node
            .create_publisher::<Float64MultiArray>(&ot, None)
            .unwrap();
        std::thread::sleep(Duration::from_millis(500)); // matching
        let big = vec![0.5f64; len];
        let t0 = Instant::now();
        let (mut k, mut published) = (0u32, 0usize);
        while k < max_count && t0.elapsed() < dur && !stop.load(std::sync::atomic::Ordering::SeqCst)
        {
            if p.publish(Float64MultiArray::vector("observation", big.clone()))
                .is_ok()
            {
                published += 1;
            }
            k += 1;
            std::thread::sleep((period * k).saturating_sub(t0.elapsed()));
        }
        published
    })
}

/// A matched writer turned forger, in its own participant and thread (so
/// the listener's timing is not disturbed): a real DDS writer on each DDS
/// topic of `topics` (name, type), announced and matched like any peer's;
/// once the node's reader of each topic is discovered (and 1 s given for
/// it to match the writer), `count` forged DATA_FRAGs from that writer's
/// GUID claiming `claimed` bytes each go to the reader. Returns the number
/// of datagrams sent.
pub fn forge_from_matched_writers(
    domain: u16,
    topics: Vec<(String, String)>,
    count: u32,
    claimed: u32,
) -> std::thread::JoinHandle<usize> {
    use ros2_client::dds::rustdds::{QosPolicies, TopicKind};
    std::thread::spawn(move || {
        let (ctx, _node) = participant(domain, "hostile_dds_forger");
        let dp = ctx.domain_participant();
        let qos: QosPolicies = (&dream_mpc::ros::dds::qos(Reliability::Reliable, 10)).into();
        let publisher = dp.create_publisher(&qos).unwrap();
        let mut writers = Vec::new();
        for (name, ty) in &topics {
            let t = dp
                .create_topic(name.clone(), ty.clone(), &qos, TopicKind::NoKey)
                .unwrap();
            let w = publisher
                .create_datawriter_no_key_cdr::<Vec<u8>>(&t, None)
                .unwrap();
            writers.push((name.clone(), w));
        }
        let own = [dp.participant_id()];
        let mut targets = Vec::new();
        for (name, w) in &writers {
            let r = find_reader(&dp, domain, name, &own, Duration::from_secs(10))
                .unwrap_or_else(|| panic!("the node's {name} reader was not discovered"));
            use ros2_client::dds::rustdds::RTPSEntity;
            targets.push((r, w.guid().to_bytes()));
        }
        std::thread::sleep(Duration::from_secs(1)); // the node matches our writers
        let mut sent = 0;
        for (r, g) in &targets {
            let prefix: [u8; 12] = g[..12].try_into().unwrap();
            let entity: [u8; 4] = g[12..].try_into().unwrap();
            sent += send_forged(r, prefix, entity, 1, count, claimed).expect("send forged");
        }
        // stay matched while the node handles them
        std::thread::sleep(Duration::from_secs(1));
        drop(writers);
        sent
    })
}

/// A parameter client sending hostile `set_parameters` requests to the
/// node `/dream_mpc`, in its own participant and thread: every `period`
/// for `dur` (at most `max_count` requests), alternating a request with
/// one 10 KB unknown name (over the 256-byte name limit, within what DDS
/// accepts), one with `many` unknown 8-byte names (over the count limit)
/// and one with a 1 MB name (over the readers' sample limit: dropped by
/// DDS). Returns (requests sent, replies received, replies that name a
/// limit).
pub fn flood_parameter_requests(
    domain: u16,
    many: usize,
    period: Duration,
    dur: Duration,
    max_count: u32,
) -> std::thread::JoinHandle<(usize, usize, usize)> {
    use ros2_client::parameters::raw;
    use ros2_client::rcl_interfaces::{SetParametersRequest, SetParametersResponse};
    use ros2_client::{Name, ServiceMapping, ServiceTypeName};
    std::thread::spawn(move || {
        let (_ctx, mut node) = participant(domain, "hostile_param_client");
        let q = dream_mpc::ros::dds::qos(Reliability::Reliable, 10);
        let client = node
            .create_client::<SetParametersRequest, SetParametersResponse>(
                ServiceMapping::Enhanced,
                &Name::new("/dream_mpc", "set_parameters").unwrap(),
                &ServiceTypeName::new("rcl_interfaces", "SetParameters"),
                q.clone(),
                q,
            )
            .unwrap();
        std::thread::sleep(Duration::from_secs(1)); // matching
        let value = raw::ParameterValue {
            ptype: raw::ParameterType::DOUBLE,
            boolean_value: false,
            int_value: 0,
            double_value: 1.0,
            string_value: String::new(),
            byte_array: vec![],
            bool_array: vec![],
            int_array: vec![],
            double_array: vec![],
            string_array: vec![],
        };
        let param = |name: String| raw::Parameter {
            name,
            value: value.clone(),
        };
        let requests = [
            vec![param("n".repeat(10_000))],
            (0..many).map(|i| param(format!("u{i:07}"))).collect(),
            vec![param("m".repeat(1 << 20))],
        ];
        let t0 = Instant::now();
        let (mut sent, mut replies, mut limited) = (0usize, 0usize, 0usize);
        let mut k = 0u32;
        let take = |replies: &mut usize, limited: &mut usize| {
            while let Ok(Some((_, r))) = client.receive_response() {
                *replies += 1;
                if r.results.iter().any(|x| x.reason.contains("at most")) {
                    *limited += 1;
                }
            }
        };
        while k < max_count && t0.elapsed() < dur {
            let r = SetParametersRequest {
                parameter: requests[k as usize % requests.len()].clone(),
            };
            if client.send_request(r).is_ok() {
                sent += 1;
            }
            k += 1;
            take(&mut replies, &mut limited);
            std::thread::sleep((period * k).saturating_sub(t0.elapsed()));
        }
        let t1 = Instant::now();
        while t1.elapsed() < Duration::from_secs(1) {
            take(&mut replies, &mut limited);
            std::thread::sleep(Duration::from_millis(10));
        }
        (sent, replies, limited)
    })
}
