//! `dream-mpc run`: the ROS 2 node, in ros2_control's lifecycle.
//!
//! - [`configure`]: DDS participant, topics, publisher and subscription,
//!   and every buffer the threads share ([`Handoff`]); all allocation of
//!   the run happens here or in [`Controller::new`].
//! - [`Configured::activate`]: starts three named threads:
//!   - [`dds_in`]: takes observations (Float64MultiArray or JointState),
//!     maps them to the observation vector, writes them into the
//!     [`LatestWins`] slot (newest wins: after a burst the controller plans
//!     on the newest observation);
//!   - [`control`]: [`ControlLoop::update`] at a fixed period with absolute
//!     release times (`next += period`, no sleep-after-work drift); update
//!     never allocates or blocks: it queues the action and, once per
//!     diagnostics period, a [`Summary`] into bounded, preallocated
//!     `crossbeam` [`ArrayQueue`]s (`force_push`: when full the oldest entry
//!     is dropped and counted, the control thread never waits);
//!   - [`dds_out`]: drains both queues, publishes every action and each
//!     summary as `/diagnostics` (the only thread that builds messages).
//! - [`Active::wait`] (deactivate): on stop (Ctrl-C / SIGTERM,
//!   [`StopHandle::stop`], or a planner fault under `on_planner_fault:
//!   stop`) the control thread queues the safe action as the last word, the
//!   publisher sends it, the threads are joined and the report returned.

use super::config::{Config, JointField, ObsKind};
use super::dds::{
    create_publisher, create_subscription, create_topic, err, NodeError, ReaderLimit,
    SCALAR_SAMPLE_BYTES,
};
use super::params::{ParamServer, Store, TUNABLE_QUEUE};
use super::qos::{self as topic_qos, Ours, QosWatch, Role};
use super::realtime::{self, RtConfig, RtStatus};
use crate::bag::recorder::Recorder;
use crate::bag::write::{now_ns, BagOptions};
use crate::control::cycle::{ControlLoop, ControlReport, Ports};
use crate::control::LatestWins;
use crate::control::{status_name, ActionVec, Controller, Summary, TickKind, Tunables};
use crate::msgs::{
    self, DiagnosticArray, DiagnosticStatus, Float64, Float64MultiArray, Header, Int64, JointState,
    KeyValue,
};
use crossbeam::queue::ArrayQueue;
use ros2_client::dds::rustdds::mio1::{Events, Interest, Poll, Token};
use ros2_client::{Context, ContextOptions, Node, NodeName, NodeOptions, Publisher, Subscription};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// Actions queued from the control thread to the publisher. The publisher
/// normally takes each one within microseconds; 8 covers a publisher
/// stalled for 8 periods before the oldest is dropped (and counted).
pub const ACTION_QUEUE: usize = 8;
/// Diagnostics summaries queued (one per diagnostics period).
pub const SUMMARY_QUEUE: usize = 2;

/// Shared stop flag plus the threads to wake.
#[derive(Clone, Default)]
pub struct StopHandle {
    flag: Arc<AtomicBool>,
    wake: Arc<Mutex<Vec<thread::Thread>>>,
}

impl StopHandle {
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Ok(w) = self.wake.lock() {
            w.iter().for_each(|t| t.unpark());
        }
    }
    pub fn stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
    fn register(&self, t: thread::Thread) {
        if let Ok(mut w) = self.wake.lock() {
            w.push(t);
        }
    }
}

/// Totals reported when the node stops.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunReport {
    /// What the control thread counted and timed.
    pub control: ControlReport,
    pub observations_received: u64,
    pub actions_published: u64,
    /// Actions dropped because the publisher fell `ACTION_QUEUE` behind.
    pub actions_dropped: u64,
    pub diagnostics_published: u64,
    /// Incompatible QoS peers reported on our topics.
    pub qos_incompatible: u64,
    /// Parameter-service requests refused (in part) by the request limits.
    pub parameter_requests_refused: u64,
    /// The real-time settings in force on the control thread.
    pub realtime: RtStatus,
    /// Observation samples DDS dropped unbuffered for being larger than
    /// [`max_observation_bytes`].
    pub dds_oversized_dropped: u64,
    /// DATA_FRAG fragments DDS dropped from writers it had not matched.
    pub dds_unmatched_fragments: u64,
    /// Tick records the bag writer fell behind on (`record`; 0 when off).
    pub records_dropped: u64,
    /// The closed bag (`record`), or why recording failed.
    pub record: Option<Result<crate::bag::write::BagSummary, String>>,
}

/// `s`, registered with `poll` as readable under `Token(token)`.
/// Start-up only.
fn polled<M: serde::de::DeserializeOwned>(
    mut s: Subscription<M>,
    poll: &Poll,
    token: usize,
) -> Result<Subscription<M>, NodeError> {
    poll.registry()
        .register(&mut s, Token(token), Interest::READABLE)
        .map_err(err("poll register"))?;
    Ok(s)
}

// ---------------------------------------------------------------------------
// Handoffs and the update step
// ---------------------------------------------------------------------------

/// Everything the node's threads share, allocated once in [`configure`].
pub struct Handoff {
    /// dds-in -> control: newest observation wins.
    pub observation: LatestWins,
    /// control -> dds-out: every action, bounded (oldest dropped when full).
    pub actions: ArrayQueue<ActionVec>,
    /// control -> dds-out: one summary per diagnostics period.
    pub summaries: ArrayQueue<Summary>,
    /// Set by the control thread after it queued the final safe action.
    pub done: AtomicBool,
    pub received: AtomicU64,
    pub mapping_errors: AtomicU64,
    pub published: AtomicU64,
    pub actions_dropped: AtomicU64,
    pub diagnostics: AtomicU64,
    /// Incompatible QoS peers discovered on our topics ([`QosWatch`]).
    pub qos_incompatible: AtomicU64,
    /// Parameter-service requests with a refusal by the request limits
    /// ([`super::params`]: too many entries, a name or value too long).
    pub param_requests_refused: AtomicU64,
    /// parameter services -> control: the newest run-time tunables,
    /// applied between ticks (bounded; the oldest is overwritten).
    pub tunables: ArrayQueue<Tunables>,
    /// control -> bag writer thread (`record`): each tick's observation
    /// and action, preallocated; dropped and counted when full.
    pub recorder: Option<Arc<Recorder>>,
}

impl Handoff {
    /// Allocates the observation slot and both queues (start-up only).
    pub fn new(obs_capacity: usize, epoch: Instant) -> Self {
        Handoff {
            observation: LatestWins::new(obs_capacity, epoch),
            actions: ArrayQueue::new(ACTION_QUEUE),
            summaries: ArrayQueue::new(SUMMARY_QUEUE),
            done: AtomicBool::new(false),
            received: AtomicU64::new(0),
            mapping_errors: AtomicU64::new(0),
            published: AtomicU64::new(0),
            actions_dropped: AtomicU64::new(0),
            diagnostics: AtomicU64::new(0),
            qos_incompatible: AtomicU64::new(0),
            param_requests_refused: AtomicU64::new(0),
            tunables: ArrayQueue::new(TUNABLE_QUEUE),
            recorder: None,
        }
    }

    /// The same hand-off with tick recording into `recorder`.
    pub fn with_recorder(mut self, recorder: Arc<Recorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }
}

/// The control loop's ports over the hand-off: actions and summaries into
/// their bounded queues (`force_push`: a full queue drops its oldest entry,
/// counted for actions), records into the bag recorder when recording.
impl Ports for Handoff {
    fn observation(&self) -> &LatestWins {
        &self.observation
    }

    fn newest_tunables(&self) -> Option<Tunables> {
        let mut newest = None;
        while let Some(t) = self.tunables.pop() {
            newest = Some(t);
        }
        newest
    }

    fn put_action(&self, action: &ActionVec) {
        if self.actions.force_push(action.clone()).is_some() {
            self.actions_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn record(&self, step: u64, observation: &[f64], action: &ActionVec) {
        if let Some(r) = &self.recorder {
            r.push(step, now_ns(), observation, action);
        }
    }

    fn put_summary(&self, summary: Summary) {
        let _ = self.summaries.force_push(summary);
    }

    fn finish(&self, last: &ActionVec) {
        self.put_action(last);
        self.done.store(true, Ordering::SeqCst);
        if let Some(r) = &self.recorder {
            r.finish();
        }
    }
}

// ---------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------

/// The observation subscription, of the configured message type.
pub enum ObsSubscription {
    Array(Subscription<Float64MultiArray>),
    Joints(Subscription<JointState>),
}

/// How a JointState maps to the observation vector.
pub struct JointMapping {
    pub joints: Vec<String>,
    pub fields: Vec<JointField>,
    pub size: usize,
}

/// A configured node: DDS entities and shared buffers exist, no thread
/// runs yet.
pub struct Configured {
    ctx: Context,
    node: Node,
    sub: ObsSubscription,
    poll: Poll,
    watch: QosWatch,
    params: Option<ParamServer>,
    act_pub: Publisher<Float64MultiArray>,
    diag_pub: Publisher<DiagnosticArray>,
    handoff: Arc<Handoff>,
    control: ControlLoop,
    mapping: JointMapping,
    diag: DiagContext,
    rx: ObsReception,
    rt: RtConfig,
    bag_writer: Option<BagWriterThread>,
    record_in: RecordIn,
}

/// The reward and episode subscriptions recorded with the ticks
/// (`record_reward_topic`, `record_episode_topic`); read by the DDS-in
/// thread into the recorder.
#[derive(Default)]
pub struct RecordIn {
    pub reward: Option<Subscription<Float64>>,
    pub episode: Option<Subscription<Int64>>,
}

type BagWriterThread =
    JoinHandle<Result<crate::bag::write::BagSummary, crate::bag::write::BagError>>;

/// What DDS refused on the observation topic before buffering it, and on
/// the node's other readers (parameter services, recorded topics).
struct ObsReception {
    stats: Arc<ros2_client::dds::rustdds::ReceptionStats>,
    max_bytes: usize,
    others: Vec<ReaderLimit>,
}

impl ObsReception {
    /// One stderr line per reader at exit when anything was dropped
    /// (tests read them).
    fn report(&self) {
        for r in &self.others {
            r.report();
        }
        let (over, unmatched) = (
            self.stats.oversized_samples(),
            self.stats.unmatched_fragments(),
        );
        if over + unmatched > 0 {
            eprintln!(
                "dds: observation reader dropped {over} oversized samples (over {} bytes) and \
                 {unmatched} fragments from unmatched writers",
                self.max_bytes
            );
        }
    }
}

/// Fixed facts the diagnostics message reports besides the summary.
#[derive(Clone, Copy, Debug)]
pub struct DiagContext {
    pub source: &'static str,
    pub rate_configured_hz: f64,
    /// The real-time settings in force on the control thread.
    pub rt: RtStatus,
}

/// A running node.
pub struct Active {
    _ctx: Context,
    node: Node,
    handoff: Arc<Handoff>,
    dds_in: JoinHandle<()>,
    dds_out: JoinHandle<()>,
    params: Option<JoinHandle<()>>,
    control: JoinHandle<Option<ControlReport>>,
    rt: RtStatus,
    rx: ObsReception,
    bag_writer: Option<BagWriterThread>,
}

/// Configure: create the DDS participant, topics, publisher and
/// subscription on `domain`, and allocate the shared buffers.
pub fn configure(
    cfg: &Config,
    controller: Controller,
    domain: u16,
) -> Result<Configured, NodeError> {
    let ctx = Context::with_options(ContextOptions::new().domain_id(domain))
        .map_err(err("DDS context"))?;
    let mut node = ctx
        .new_node(
            NodeName::new(&cfg.namespace, &cfg.node_name).map_err(err("node name"))?,
            NodeOptions::new().enable_rosout(false),
        )
        .map_err(err("ROS 2 node"))?;
    let obs_type = match cfg.observation_type {
        ObsKind::Float64MultiArray => msgs::float64_multi_array_type(),
        ObsKind::JointState => msgs::joint_state_type(),
    };
    let obs_qos = topic_qos::profile(&cfg.qos_observation);
    let obs_topic = create_topic(
        &mut node,
        &cfg.observation_topic,
        obs_type,
        &obs_qos,
        "observation topic",
    )?;
    // Bounded reception (docs/rustdds-patch.md): RustDDS
    // drops observations larger than this before buffering them, and counts.
    let obs_rx_stats = {
        use ros2_client::dds::rustdds::{ReceptionLimits, TopicDescription};
        ctx.domain_participant().set_reception_limits(
            &obs_topic.name(),
            ReceptionLimits::with_max_sample_size(max_observation_bytes(cfg)),
        )
    };
    let act_pub = create_publisher::<Float64MultiArray>(
        &mut node,
        &cfg.action_topic,
        msgs::float64_multi_array_type(),
        &topic_qos::profile(&cfg.qos_action),
        "action",
    )?;
    let diag_pub = create_publisher::<DiagnosticArray>(
        &mut node,
        &cfg.diagnostics_topic,
        msgs::diagnostic_array_type(),
        &topic_qos::profile(&cfg.qos_diagnostics),
        "diagnostics",
    )?;
    let mut sub = match cfg.observation_type {
        ObsKind::Float64MultiArray => ObsSubscription::Array(
            node.create_subscription::<Float64MultiArray>(&obs_topic, None)
                .map_err(err("observation subscription"))?,
        ),
        ObsKind::JointState => ObsSubscription::Joints(
            node.create_subscription::<JointState>(&obs_topic, None)
                .map_err(err("observation subscription"))?,
        ),
    };
    let sub_guid = match &sub {
        ObsSubscription::Array(s) => s.guid(),
        ObsSubscription::Joints(s) => s.guid(),
    };
    let watch = QosWatch::new(
        &ctx.domain_participant(),
        vec![
            Ours {
                guid: sub_guid,
                topic: cfg.observation_topic.clone(),
                role: Role::Subscription,
            },
            Ours {
                guid: act_pub.guid(),
                topic: cfg.action_topic.clone(),
                role: Role::Publisher,
            },
            Ours {
                guid: diag_pub.guid(),
                topic: cfg.diagnostics_topic.clone(),
                role: Role::Publisher,
            },
        ],
    );
    let mut reader_limits: Vec<ReaderLimit> = Vec::new();
    let params = match cfg.parameter_services {
        None => None,
        Some(mapping) => {
            let mut values = controller.tunables;
            values.plan_fraction = cfg.control.plan_fraction;
            let store = Store::new(values, controller.has_planner_tunables(), cfg);
            Some(
                ParamServer::new(
                    &ctx,
                    &mut node,
                    &node_fqn(&cfg.namespace, &cfg.node_name),
                    mapping,
                    store,
                )
                .map_err(NodeError)?,
            )
        }
    };
    if let Some(p) = &params {
        reader_limits.extend(p.readers().iter().cloned());
    }
    let poll = Poll::new().map_err(err("poll"))?;
    match &mut sub {
        ObsSubscription::Array(s) => poll.registry().register(s, Token(1), Interest::READABLE),
        ObsSubscription::Joints(s) => poll.registry().register(s, Token(1), Interest::READABLE),
    }
    .map_err(err("poll register"))?;
    let epoch = Instant::now();
    let mut handoff = Handoff::new(controller.obs_capacity(), epoch);
    let mut bag_writer = None;
    let mut record_in = RecordIn::default();
    if let Some(dir) = &cfg.record {
        let qos = topic_qos::profile(&cfg.qos_observation);
        if let Some(t) = &cfg.record_reward_topic {
            let (s, limit) = create_subscription(
                &ctx,
                &mut node,
                t,
                msgs::float64_type(),
                &qos,
                "reward",
                SCALAR_SAMPLE_BYTES,
            )?;
            reader_limits.push(limit);
            record_in.reward = Some(polled(s, &poll, 2)?);
        }
        if let Some(t) = &cfg.record_episode_topic {
            let (s, limit) = create_subscription(
                &ctx,
                &mut node,
                t,
                msgs::int64_type(),
                &qos,
                "episode",
                SCALAR_SAMPLE_BYTES,
            )?;
            reader_limits.push(limit);
            record_in.episode = Some(polled(s, &poll, 3)?);
        }
        let rec = Arc::new(Recorder::new(
            cfg.record_queue,
            cfg.control.observation_size,
            cfg.control.action_size,
        ));
        let mut opts = BagOptions::new(cfg.control.observation_size, cfg.control.action_size);
        opts.reward = record_in.reward.is_some();
        opts.episode = record_in.episode.is_some();
        opts.source = format!("dream-mpc run ({})", cfg_source_name(cfg));
        bag_writer = Some(
            rec.spawn_writer(dir.clone(), opts)
                .map_err(|e| NodeError(format!("record: {e}")))?,
        );
        eprintln!("dream-mpc run: recording into {}", dir.display());
        handoff = handoff.with_recorder(rec);
    }
    let handoff = Arc::new(handoff);
    Ok(Configured {
        ctx,
        node,
        sub,
        poll,
        watch,
        params,
        act_pub,
        diag_pub,
        handoff,
        control: ControlLoop::new(&cfg.control, controller, epoch),
        mapping: JointMapping {
            joints: cfg.joints.clone(),
            fields: cfg.fields.clone(),
            size: cfg.control.observation_size,
        },
        diag: DiagContext {
            source: cfg_source_name(cfg),
            rate_configured_hz: cfg.control.control_rate_hz,
            rt: RtStatus::default(),
        },
        rx: ObsReception {
            stats: obs_rx_stats,
            max_bytes: max_observation_bytes(cfg),
            others: reader_limits,
        },
        rt: cfg.realtime,
        bag_writer,
        record_in,
    })
}

impl Configured {
    /// Activate: lock memory (process-wide, after every start-up
    /// allocation), start the control thread, which applies its own
    /// real-time settings ([`realtime::apply_to_current_thread`]) and
    /// reports them; warn about each refused setting (or, with
    /// `realtime.required`, stop it before its first tick and fail); then
    /// start the publisher and the subscriber and release the control
    /// thread (the control clock starts then).
    pub fn activate(self, stop: StopHandle) -> Result<Active, NodeError> {
        let Configured {
            ctx,
            node,
            sub,
            poll,
            watch,
            params,
            act_pub,
            diag_pub,
            handoff,
            control: lp,
            mapping,
            mut diag,
            rx,
            rt,
            bag_writer,
            record_in,
        } = self;
        let mut refused = Vec::new();
        if rt.lock_memory {
            if let Err(r) = realtime::lock_memory() {
                refused.push(r);
            }
        }
        // control thread: apply its settings, report them, wait for the go
        // (the publisher's handle) or an abort (None)
        let (status_tx, status_rx) = sync_channel(1);
        let (go_tx, go_rx) = sync_channel::<Option<Thread>>(1);
        let ctl = {
            let (h, stop) = (handoff.clone(), stop.clone());
            thread::Builder::new()
                .name("control".into())
                .stack_size(rt.stack_bytes())
                .spawn(move || {
                    let _ = status_tx.send(realtime::apply_to_current_thread(&rt));
                    let publisher = go_rx.recv().ok().flatten()?;
                    Some(control(
                        lp.restarted_at(Instant::now()),
                        &h,
                        &stop,
                        &publisher,
                    ))
                })
                .map_err(err("spawn control"))?
        };
        let (status, more) = status_rx
            .recv()
            .map_err(|_| NodeError("control thread ended before reporting its settings".into()))?;
        refused.extend(more);
        for r in &refused {
            if rt.required {
                eprintln!("dream-mpc run: {r} (realtime.required: true)");
            } else {
                eprintln!("dream-mpc run: warning: {r}; running without it");
            }
        }
        if rt.required && !refused.is_empty() {
            let _ = go_tx.send(None);
            let _ = ctl.join();
            let names: Vec<&str> = refused.iter().map(|r| r.setting).collect();
            return Err(NodeError(format!(
                "realtime.required is true and the OS refused {}; not starting",
                names.join(", ")
            )));
        }
        eprintln!("dream-mpc run: realtime: control thread {status}");
        diag.rt = status;
        let out = {
            let (h, stats) = (handoff.clone(), rx.stats.clone());
            thread::Builder::new()
                .name("dds-out".into())
                .spawn(move || dds_out(act_pub, diag_pub, &h, diag, &stats))
                .map_err(err("spawn dds-out"))?
        };
        let dds_in_thread = {
            let (h, stop) = (handoff.clone(), stop.clone());
            thread::Builder::new()
                .name("dds-in".into())
                .spawn(move || dds_in(sub, record_in, poll, watch, &mapping, &h, &stop))
                .map_err(err("spawn dds-in"))?
        };
        let params_thread = match params {
            None => None,
            Some(mut server) => {
                let (h, stop) = (handoff.clone(), stop.clone());
                Some(
                    thread::Builder::new()
                        .name("params".into())
                        .spawn(move || {
                            while sleep_until(Instant::now() + Duration::from_millis(20), &stop) {
                                server.serve(&h.tunables, &h.param_requests_refused);
                            }
                        })
                        .map_err(err("spawn params"))?,
                )
            }
        };
        let wake = out.thread().clone();
        go_tx
            .send(Some(wake.clone()))
            .map_err(|_| NodeError("control thread ended before its first tick".into()))?;
        stop.register(ctl.thread().clone());
        stop.register(wake);
        if stop.stopped() {
            stop.stop();
        }
        Ok(Active {
            _ctx: ctx,
            node,
            handoff,
            dds_in: dds_in_thread,
            dds_out: out,
            params: params_thread,
            control: ctl,
            rx,
            rt: status,
            bag_writer,
        })
    }
}

impl Active {
    /// Deactivate and clean up: wait for the control thread (it returns on
    /// stop or on a planner fault under `on_planner_fault: stop`), then the
    /// publisher (after it sent the final safe action), then the
    /// subscriber.
    pub fn wait(self, stop: &StopHandle) -> Result<RunReport, NodeError> {
        let r = self
            .control
            .join()
            .map_err(|_| NodeError("control thread panicked".into()))?
            .ok_or_else(|| NodeError("control thread did not start".into()))?;
        // a fault stop ends the other threads too
        stop.stop();
        self.dds_out
            .join()
            .map_err(|_| NodeError("publisher thread panicked".into()))?;
        self.dds_in
            .join()
            .map_err(|_| NodeError("subscriber thread panicked".into()))?;
        if let Some(p) = self.params {
            p.join()
                .map_err(|_| NodeError("parameter services thread panicked".into()))?;
        }
        drop(self.node);
        self.rx.report();
        let h = &self.handoff;
        // the control thread has queued its last record and called finish()
        let record = self.bag_writer.map(|w| match w.join() {
            Ok(Ok(s)) => {
                eprintln!(
                    "dream-mpc run: recorded {} ticks into {} ({} records dropped)",
                    s.steps,
                    s.dir.display(),
                    s.records_dropped
                );
                Ok(s)
            }
            Ok(Err(e)) => {
                eprintln!("dream-mpc run: error: record: {e}");
                Err(e.to_string())
            }
            Err(_) => {
                eprintln!("dream-mpc run: error: record: the bag writer thread panicked");
                Err("bag writer thread panicked".to_string())
            }
        });
        Ok(RunReport {
            control: r,
            observations_received: h.received.load(Ordering::Relaxed),
            actions_published: h.published.load(Ordering::Relaxed),
            actions_dropped: h.actions_dropped.load(Ordering::Relaxed),
            diagnostics_published: h.diagnostics.load(Ordering::Relaxed),
            qos_incompatible: h.qos_incompatible.load(Ordering::Relaxed),
            parameter_requests_refused: h.param_requests_refused.load(Ordering::Relaxed),
            realtime: self.rt,
            dds_oversized_dropped: self.rx.stats.oversized_samples(),
            dds_unmatched_fragments: self.rx.stats.unmatched_fragments(),
            records_dropped: h.recorder.as_ref().map_or(0, |r| r.dropped()),
            record,
        })
    }
}

/// Run the node until `stop` fires (or a planner fault stops it):
/// configure, activate, wait. `controller` is built by the caller (all
/// allocation happens before the control thread starts).
pub fn run(
    cfg: &Config,
    controller: Controller,
    domain: u16,
    stop: StopHandle,
) -> Result<RunReport, NodeError> {
    configure(cfg, controller, domain)?
        .activate(stop.clone())?
        .wait(&stop)
}

// ---------------------------------------------------------------------------
// Thread bodies
// ---------------------------------------------------------------------------

/// Sleep until `t` (parked, so stop wakes it). False when stopped.
fn sleep_until(t: Instant, stop: &StopHandle) -> bool {
    loop {
        if stop.stopped() {
            return false;
        }
        let now = Instant::now();
        if now >= t {
            return true;
        }
        thread::park_timeout(t - now);
    }
}

/// The control thread: [`ControlLoop::update`] at each release time until
/// stop or a fault stop, then [`ControlLoop::deactivate`]; wakes the
/// publisher after each update.
pub fn control(
    mut lp: ControlLoop,
    h: &Handoff,
    stop: &StopHandle,
    publisher: &Thread,
) -> ControlReport {
    while sleep_until(lp.next_release(), stop) {
        lp.update(Instant::now(), h);
        publisher.unpark();
        if lp.controller.must_stop() {
            break;
        }
    }
    let r = lp.deactivate(h);
    publisher.unpark();
    r
}

/// The DDS-in thread: waits for observations (20 ms poll so stop is seen),
/// maps each to the observation vector and writes it into the slot. A
/// JointState missing a configured joint or field is written as an empty
/// vector, which the tick refuses and counts. Every wake-up it also reports
/// incompatible QoS peers ([`QosWatch::poll`]).
pub fn dds_in(
    sub: ObsSubscription,
    record_in: RecordIn,
    mut poll: Poll,
    mut watch: QosWatch,
    map: &JointMapping,
    h: &Handoff,
    stop: &StopHandle,
) {
    let mut events = Events::with_capacity(8);
    let mut vec = vec![0.0f64; map.size];
    while !stop.stopped() {
        let _ = poll.poll(&mut events, Some(Duration::from_millis(20)));
        watch.poll(&h.qos_incompatible);
        // rewards and episode indices first: the sim publishes them before
        // the observation they precede
        if let Some(rec) = &h.recorder {
            if let Some(s) = &record_in.episode {
                while let Ok(Some((m, _))) = s.take() {
                    rec.note_episode(m.data);
                }
            }
            if let Some(s) = &record_in.reward {
                while let Ok(Some((m, _))) = s.take() {
                    rec.note_reward(m.data);
                }
            }
        }
        loop {
            let got = match &sub {
                ObsSubscription::Array(s) => match s.take() {
                    Ok(Some((m, _))) => {
                        h.observation.write(&m.data, Instant::now());
                        true
                    }
                    _ => false,
                },
                ObsSubscription::Joints(s) => match s.take() {
                    Ok(Some((m, _))) => {
                        if map_joint_state(&m, &map.joints, &map.fields, &mut vec) {
                            h.observation.write(&vec, Instant::now());
                        } else {
                            h.mapping_errors.fetch_add(1, Ordering::Relaxed);
                            h.observation.write(&[], Instant::now());
                        }
                        true
                    }
                    _ => false,
                },
            };
            if !got {
                break;
            }
            h.received.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The DDS-out thread: publishes every queued action and every queued
/// summary as `/diagnostics`, until the control thread marks the handoff
/// done (after its final safe action, which goes out too).
pub fn dds_out(
    act_pub: Publisher<Float64MultiArray>,
    diag_pub: Publisher<DiagnosticArray>,
    h: &Handoff,
    diag: DiagContext,
    rx: &ros2_client::dds::rustdds::ReceptionStats,
) {
    loop {
        let done = h.done.load(Ordering::SeqCst);
        while let Some(a) = h.actions.pop() {
            if act_pub
                .publish(Float64MultiArray::vector("action", a.to_vec()))
                .is_ok()
            {
                h.published.fetch_add(1, Ordering::Relaxed);
            }
        }
        while let Some(s) = h.summaries.pop() {
            let d = diagnostics(
                &s,
                diag,
                h.received.load(Ordering::Relaxed),
                h.mapping_errors.load(Ordering::Relaxed),
                h.actions_dropped.load(Ordering::Relaxed),
                h.qos_incompatible.load(Ordering::Relaxed),
                (rx.oversized_samples(), rx.unmatched_fragments()),
            );
            let mut d = d;
            if let (Some(r), Some(st)) = (&h.recorder, d.status.first_mut()) {
                st.values.push(KeyValue {
                    key: "records_dropped".into(),
                    value: r.dropped().to_string(),
                });
            }
            if let Some(st) = d.status.first_mut() {
                st.values.push(KeyValue {
                    key: "parameter_requests_refused".into(),
                    value: h.param_requests_refused.load(Ordering::Relaxed).to_string(),
                });
            }
            if diag_pub.publish(d).is_ok() {
                h.diagnostics.fetch_add(1, Ordering::Relaxed);
            }
        }
        if done {
            break;
        }
        thread::park_timeout(Duration::from_millis(50));
    }
    // Give the reliable writer a moment to put the last sample on the
    // wire before the process exits.
    thread::sleep(Duration::from_millis(30));
}

/// Largest serialized observation message DDS accepts, in bytes: the
/// configured observation as f64 (times 3 for JointState's position,
/// velocity and effort), twice over, plus 64 KiB for headers, layout and
/// joint names. Computed once at start-up.
pub fn max_observation_bytes(cfg: &Config) -> usize {
    65_536 + 2 * 3 * 8 * cfg.control.observation_size
}

fn cfg_source_name(cfg: &Config) -> &'static str {
    match cfg.control.action_source {
        super::config::SourceKind::DreamMpc => "dream_mpc",
        super::config::SourceKind::Linear => "linear",
        super::config::SourceKind::Zero => "zero",
    }
}

/// Map a JointState to the observation vector: for each field, that field
/// of each configured joint. False if a joint or field value is missing.
pub fn map_joint_state(
    m: &JointState,
    joints: &[String],
    fields: &[JointField],
    out: &mut [f64],
) -> bool {
    let mut k = 0;
    for f in fields {
        let src = match f {
            JointField::Position => &m.position,
            JointField::Velocity => &m.velocity,
            JointField::Effort => &m.effort,
        };
        for j in joints {
            let Some(i) = m.name.iter().position(|n| n == j) else {
                return false;
            };
            let Some(v) = src.get(i) else {
                return false;
            };
            out[k] = *v;
            k += 1;
        }
    }
    true
}

/// Build the `/diagnostics` message from a control summary (DDS-out thread;
/// allocates the message).
pub fn diagnostics(
    sum: &Summary,
    ctx: DiagContext,
    received: u64,
    mapping_errors: u64,
    actions_dropped: u64,
    qos_incompatible: u64,
    (dds_oversized, dds_unmatched): (u64, u64),
) -> DiagnosticArray {
    let kind = sum.last_kind.name();
    let rate = sum.rate_hz;
    let rate_cfg = ctx.rate_configured_hz;
    let c = &sum.counts;
    let (level, message) = if sum.last_kind == TickKind::PlannerFault {
        (
            DiagnosticStatus::ERROR,
            format!(
                "planner fault: {}; publishing the safe action",
                sum.last_fault
            ),
        )
    } else if sum.last_kind != TickKind::Planned {
        (
            DiagnosticStatus::ERROR,
            format!("not planning: {kind}; publishing the safe action"),
        )
    } else if rate < 0.9 * rate_cfg {
        (
            DiagnosticStatus::WARN,
            format!("control rate {rate:.1} Hz below {rate_cfg:.1} Hz"),
        )
    } else {
        (DiagnosticStatus::OK, "planning".to_string())
    };
    let kv = |k: &str, v: String| KeyValue {
        key: k.to_string(),
        value: v,
    };
    let ms = |x: f64| format!("{:.3}", x * 1e3);
    DiagnosticArray {
        header: Header {
            stamp: msgs::Time::now(),
            frame_id: String::new(),
        },
        status: vec![DiagnosticStatus {
            level,
            name: "dream_mpc: controller".into(),
            message,
            hardware_id: "dream_mpc".into(),
            values: vec![
                kv("action_source", ctx.source.to_string()),
                kv("rate_hz", format!("{rate:.2}")),
                kv("rate_configured_hz", format!("{rate_cfg:.2}")),
                kv("ticks", c.ticks.to_string()),
                kv("planner_latency_p50_ms", ms(sum.latency_p50_s)),
                kv("planner_latency_p99_ms", ms(sum.latency_p99_s)),
                kv("planner_latency_max_ms", ms(sum.latency_max_s)),
                kv("period_jitter_p99_ms", ms(sum.jitter_p99_s)),
                kv("planner_cut_by_deadline", c.cut_by_deadline.to_string()),
                kv("deadline_misses", c.deadline_misses.to_string()),
                kv("overruns", c.overruns.to_string()),
                kv("observations_received", received.to_string()),
                kv("no_observation", c.no_observation.to_string()),
                kv("stale_observations", c.stale.to_string()),
                kv("wrong_size_observations", c.wrong_size.to_string()),
                kv("non_finite_observations", c.non_finite.to_string()),
                kv("implausible_observations", c.implausible.to_string()),
                kv("dds_oversized_dropped", dds_oversized.to_string()),
                kv("dds_unmatched_fragments", dds_unmatched.to_string()),
                kv("joint_mapping_errors", mapping_errors.to_string()),
                kv("source_failures", c.source_failed.to_string()),
                kv("planner_faults", c.planner_faults.to_string()),
                kv("last_planner_fault", sum.last_fault.to_string()),
                kv("actions_dropped", actions_dropped.to_string()),
                kv("qos_incompatible", qos_incompatible.to_string()),
                kv("budget.iterations", sum.tunables.iterations.to_string()),
                kv("budget.step_size", format!("{}", sum.tunables.step_size)),
                kv("budget.beta", format!("{}", sum.tunables.beta)),
                kv("plan_fraction", format!("{}", sum.tunables.plan_fraction)),
                kv("planner_iterations_last", sum.last_iterations.to_string()),
                kv("clamped_elements", c.clamped.to_string()),
                kv("predicted_return", format!("{}", sum.predicted_return)),
                kv("planner_status", status_name(sum.last_status).to_string()),
                kv("last_tick", kind.to_string()),
                kv("rt_priority", ctx.rt.priority.to_string()),
                kv(
                    "rt_cpu",
                    ctx.rt.cpu.map_or("none".to_string(), |c| c.to_string()),
                ),
                kv("rt_memory_locked", ctx.rt.memory_locked.to_string()),
                kv(
                    "rt_stack_prefaulted_kib",
                    ctx.rt.stack_prefaulted_kib.to_string(),
                ),
            ],
        }],
    }
}

/// `/<namespace>/<node>` (ROS 2's fully qualified node name), under which
/// the node's parameter services are named.
fn node_fqn(namespace: &str, node: &str) -> String {
    format!("{}/{node}", namespace.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joint_state_maps_by_name_field_major() {
        let m = JointState {
            name: vec!["b".into(), "a".into()],
            position: vec![2.0, 1.0],
            velocity: vec![20.0, 10.0],
            ..Default::default()
        };
        let joints = vec!["a".to_string(), "b".to_string()];
        let mut out = [0.0; 4];
        assert!(map_joint_state(
            &m,
            &joints,
            &[JointField::Position, JointField::Velocity],
            &mut out
        ));
        assert_eq!(out, [1.0, 2.0, 10.0, 20.0]);
        assert!(!map_joint_state(
            &m,
            &joints,
            &[JointField::Effort],
            &mut out[..2]
        ));
        let missing = vec!["c".to_string()];
        assert!(!map_joint_state(
            &m,
            &missing,
            &[JointField::Position],
            &mut out[..1]
        ));
    }
}
