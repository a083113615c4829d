//! Hostile DDS traffic for the robustness tests and the `dds_attack`
//! benchmark (issue 19 items 6 and 7): forged RTPS DATA_FRAG datagrams, the
//! controller's resident memory, and the gaps of the action stream.
//!
//! All traffic goes to 127.0.0.1 only, and every sender is bounded in count
//! and time by its caller.

use ros2_client::dds::rustdds::DomainParticipant;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

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

/// One RTPS datagram holding INFO_DST and a DATA_FRAG (little endian) from
/// writer `src_prefix`:00000103 (a user-defined writer that was never
/// announced) to the reader `dst`, sequence number `sn`, claiming a sample of
/// `claimed` bytes in 1,024-byte fragments and carrying fragment 1.
pub fn forged_data_frag(src_prefix: [u8; 12], dst: &[u8; 16], sn: u32, claimed: u32) -> Vec<u8> {
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
    m.extend_from_slice(&[0x00, 0x00, 0x01, 0x03]); // writer entity id
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

/// A GUID prefix no participant announced (time- and pid-seeded).
pub fn random_prefix() -> [u8; 12] {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x = t ^ ((std::process::id() as u64) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    let mut p = [0u8; 12];
    for b in p.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    p
}

/// Send `count` forged DATA_FRAGs (sequence numbers `first_sn..`) claiming
/// `claimed` bytes each, to every port of `target` on 127.0.0.1. Returns the
/// number of datagrams sent.
pub fn send_forged(
    target: &ReaderTarget,
    src_prefix: [u8; 12],
    first_sn: u32,
    count: u32,
    claimed: u32,
) -> std::io::Result<usize> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    let mut sent = 0;
    for k in 0..count {
        let pkt = forged_data_frag(src_prefix, &target.guid, first_sn + k, claimed);
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
