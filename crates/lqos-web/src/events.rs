//! The live event stream (`/api/v1/events`): one shared tick, fanned out.
//!
//! One task asks lqosd for the status and the 10 busiest circuits once a second, encodes the
//! answer once, and publishes it through a `tokio::sync::watch` channel; every open stream
//! only forwards the latest value. So N open streams cost lqosd one Status and one
//! TopCircuits a second, not N. The task starts with the first stream and stops when the last
//! one is gone. A session may hold at most [`crate::WebOptions::max_streams_per_session`]
//! streams at once; each stream gives its place back when the client goes away.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lqos_bus::{CircuitStat, DaemonStatus};
use serde::Serialize;
use tokio::sync::watch;

use crate::WebState;
use crate::api::{fetch_status, fetch_top};

/// How often the shared tick is computed.
pub const TICK: Duration = Duration::from_secs(1);

/// One tick: status and the 10 busiest circuits.
#[derive(Serialize)]
struct Tick {
    status: Option<DaemonStatus>,
    top: Vec<CircuitStat>,
    error: Option<String>,
}

async fn tick(state: &WebState) -> Tick {
    let (status, top) = tokio::join!(fetch_status(state), fetch_top(state, 10));
    let error = match (&status, &top) {
        (Err(e), _) | (_, Err(e)) => Some(e.to_string()),
        _ => None,
    };
    Tick { status: status.ok(), top: top.unwrap_or_default(), error }
}

/// The latest encoded tick (`None` before the first).
pub(crate) type Latest = Option<Arc<str>>;

/// The fan-out hub.
pub(crate) struct Hub {
    tx: watch::Sender<Latest>,
    running: AtomicBool,
    computed: AtomicU64,
    streams: Arc<Mutex<HashMap<String, usize>>>,
}

/// A stream's place in its session's quota; freed on drop.
pub(crate) struct StreamSlot {
    streams: Arc<Mutex<HashMap<String, usize>>>,
    session: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut m = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.session) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.session);
            }
        }
    }
}

impl Hub {
    pub(crate) fn new() -> Self {
        Hub {
            tx: watch::channel(None).0,
            running: AtomicBool::new(false),
            computed: AtomicU64::new(0),
            streams: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes one of `session`'s `max` stream places, if one is free.
    pub(crate) fn open(&self, session: &str, max: usize) -> Option<StreamSlot> {
        let mut m = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(session.to_owned()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(StreamSlot { streams: self.streams.clone(), session: session.to_owned() })
    }

    /// A receiver of the shared tick; starts the ticking task when it is not running.
    pub(crate) fn subscribe(&self, state: &WebState) -> watch::Receiver<Latest> {
        let rx = self.tx.subscribe();
        if !self.running.swap(true, Ordering::AcqRel) {
            tokio::spawn(run(state.clone()));
        }
        rx
    }

    /// Ticks computed since start (each one Status + TopCircuits on the bus).
    pub(crate) fn computed(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }
}

async fn run(state: WebState) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let hub = state.events();
        if hub.tx.receiver_count() == 0 {
            hub.running.store(false, Ordering::Release);
            // A stream that subscribed just now saw `running` still true: keep going for it.
            if hub.tx.receiver_count() == 0 || hub.running.swap(true, Ordering::AcqRel) {
                return;
            }
        }
        let t = tick(&state).await;
        hub.computed.fetch_add(1, Ordering::Relaxed);
        match serde_json::to_string(&t) {
            Ok(json) => {
                hub.tx.send_replace(Some(json.into()));
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode the live tick"),
        }
    }
}
