//! Live monitoring: event counts by kind over a sliding hour (minute buckets) and the two
//! alerts, each raised at most once per window per offender.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::event::{Event, Kind};

/// The summary's window.
pub const SUMMARY_WINDOW_SECS: u64 = 3600;
const BUCKET_SECS: u64 = 60;
/// Alerts kept for the summary.
const RECENT_ALERTS: usize = 50;
/// Sweep idle offenders after this many observations, bounding memory under floods.
const SWEEP_EVERY: u64 = 4096;

#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub brute_force: u32,
    pub cross_tenant: u32,
    pub window: Duration,
}

/// Counts of one minute, by kind (indexed as [`Kind::ALL`]).
type Bucket = Box<[u64; Kind::ALL.len()]>;

pub struct Monitor {
    started: Instant,
    buckets: VecDeque<(u64, Bucket)>,
    login_failures: HashMap<IpAddr, VecDeque<Instant>>,
    cross_denials: HashMap<String, VecDeque<Instant>>,
    alerted: HashMap<(Kind, String), Instant>,
    alerts: VecDeque<Value>,
    thresholds: Thresholds,
    observed: u64,
}

fn push_and_count(q: &mut VecDeque<Instant>, now: Instant, window: Duration) -> usize {
    while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
        q.pop_front();
    }
    q.push_back(now);
    q.len()
}

impl Monitor {
    pub fn new(thresholds: Thresholds) -> Self {
        Monitor {
            started: Instant::now(),
            buckets: VecDeque::new(),
            login_failures: HashMap::new(),
            cross_denials: HashMap::new(),
            alerted: HashMap::new(),
            alerts: VecDeque::new(),
            thresholds,
            observed: 0,
        }
    }

    fn minute(&self, now: Instant) -> u64 {
        now.duration_since(self.started).as_secs() / BUCKET_SECS
    }

    /// Whether an event of `kind` can raise an alert (its recorder then waits for the alert to
    /// be durable). Kept in step with the kinds [`Monitor::observe`] counts toward one.
    pub fn may_alert(kind: Kind) -> bool {
        matches!(
            kind,
            Kind::AuthLoginFailed | Kind::TwofaFailed | Kind::TenantCrossAccessDenied
        )
    }

    /// Counts `event`; returns an alert to record when this event crosses a threshold.
    pub fn observe(&mut self, event: &Event, now: Instant) -> Option<Event> {
        let minute = self.minute(now);
        if self.buckets.back().is_none_or(|(m, _)| *m != minute) {
            self.buckets
                .push_back((minute, Box::new([0; Kind::ALL.len()])));
        }
        let keep_from = minute.saturating_sub(SUMMARY_WINDOW_SECS / BUCKET_SECS);
        while self.buckets.front().is_some_and(|(m, _)| *m < keep_from) {
            self.buckets.pop_front();
        }
        let bucket = &mut self.buckets.back_mut().expect("just pushed").1;
        bucket[event.kind.index()] += 1;
        self.observed += 1;
        if self.observed.is_multiple_of(SWEEP_EVERY) {
            self.sweep(now);
        }
        let window = self.thresholds.window;
        match event.kind {
            Kind::AuthLoginFailed | Kind::TwofaFailed => {
                let ip = event.ip?;
                let n = push_and_count(self.login_failures.entry(ip).or_default(), now, window);
                (n >= self.thresholds.brute_force as usize)
                    .then(|| self.alert(Kind::AlertBruteForce, ip.to_string(), n, event, now))
                    .flatten()
            }
            Kind::TenantCrossAccessDenied => {
                let user = event.actor.user_id?.to_string();
                let n = push_and_count(
                    self.cross_denials.entry(user.clone()).or_default(),
                    now,
                    window,
                );
                (n >= self.thresholds.cross_tenant as usize)
                    .then(|| self.alert(Kind::AlertCrossTenantProbing, user, n, event, now))
                    .flatten()
            }
            _ => None,
        }
    }

    fn alert(
        &mut self,
        kind: Kind,
        key: String,
        n: usize,
        cause: &Event,
        now: Instant,
    ) -> Option<Event> {
        let window = self.thresholds.window;
        if let Some(at) = self.alerted.get(&(kind, key.clone())) {
            if now.duration_since(*at) < window {
                return None;
            }
        }
        self.alerted.insert((kind, key), now);
        let mut alert = Event::new(kind)
            .details(json!({"count": n, "window_secs": window.as_secs()}))
            .tenant(cause.tenant_id);
        alert.actor = cause.actor.clone();
        alert.ip = cause.ip;
        Some(alert)
    }

    /// Remembers a sealed alert line for the summary.
    pub fn remember_alert(&mut self, line: &str) {
        if let Ok(v) = serde_json::from_str(line) {
            if self.alerts.len() == RECENT_ALERTS {
                self.alerts.pop_front();
            }
            self.alerts.push_back(v);
        }
    }

    fn sweep(&mut self, now: Instant) {
        let window = self.thresholds.window;
        self.login_failures
            .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        self.cross_denials
            .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        self.alerted.retain(|_, t| now.duration_since(*t) < window);
    }

    /// Counts by kind over the last hour.
    pub fn counts(&self, now: Instant) -> BTreeMap<&'static str, u64> {
        let keep_from = self
            .minute(now)
            .saturating_sub(SUMMARY_WINDOW_SECS / BUCKET_SECS);
        let mut out = BTreeMap::new();
        for (m, bucket) in &self.buckets {
            if *m >= keep_from {
                for (k, n) in Kind::ALL.iter().zip(bucket.iter()) {
                    if *n > 0 {
                        *out.entry(k.as_str()).or_default() += n;
                    }
                }
            }
        }
        out
    }

    /// Recent alerts, newest first.
    pub fn alerts(&self) -> Vec<Value> {
        self.alerts.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brute_force_alerts_once_per_window() {
        let mut m = Monitor::new(Thresholds {
            brute_force: 3,
            cross_tenant: 2,
            window: Duration::from_secs(300),
        });
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let fail = Event::new(Kind::AuthLoginFailed).ip(ip);
        let now = Instant::now();
        assert!(m.observe(&fail, now).is_none());
        assert!(m.observe(&fail, now).is_none());
        let alert = m.observe(&fail, now).expect("third failure alerts");
        assert_eq!(alert.kind, Kind::AlertBruteForce);
        assert!(m.observe(&fail, now).is_none(), "once per window");
        let later = now + Duration::from_secs(301);
        assert!(
            m.observe(&fail, later).is_none(),
            "window slid: count restarts"
        );
        assert_eq!(m.counts(later)["auth.login_failed"], 5);
    }
}
