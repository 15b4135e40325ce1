//! Latency samples, error counts and the one-line summary (plus its JSON form).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

/// Microseconds since the first call in this process: the clock that ping ids and order notes
/// carry, so a reply can be timed on any thread without a lookup table.
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// What one worker thread measured; merged into one at the end.
#[derive(Default)]
pub struct Tally {
    /// Latencies in microseconds.
    pub latencies_us: Vec<u64>,
    /// Completed operations (pongs, responses, delivered events).
    pub ok: u64,
    /// Failures by code: an HTTP status, or a word (`io`, `closed`, `timeout`, …).
    pub errors: BTreeMap<String, u64>,
    /// Extra counters particular to a mode (`wrong_tenant`, `connected`, …).
    pub counters: BTreeMap<&'static str, u64>,
}

impl Tally {
    pub fn error(&mut self, code: impl Into<String>) {
        *self.errors.entry(code.into()).or_default() += 1;
    }

    pub fn count(&mut self, name: &'static str, n: u64) {
        *self.counters.entry(name).or_default() += n;
    }

    pub fn counter(&self, name: &'static str) -> u64 {
        self.counters.get(name).copied().unwrap_or_default()
    }

    pub fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.ok += other.ok;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in other.counters {
            *self.counters.entry(k).or_default() += v;
        }
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// `401:3,io:1`, or `none`.
    pub fn errors_by_code(&self) -> String {
        if self.errors.is_empty() {
            return "none".into();
        }
        let parts: Vec<String> = self
            .errors
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        parts.join(",")
    }

    /// Adds `p50_ms`, `p99_ms` and `max_ms` of the latencies to `summary`.
    pub fn add_latency(&mut self, summary: &mut Summary) {
        self.latencies_us.sort_unstable();
        let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
        let at = |p: f64| -> u64 {
            let v = &self.latencies_us;
            if v.is_empty() {
                return 0;
            }
            let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1]
        };
        summary.put("p50_ms", ms(at(0.50)));
        summary.put("p99_ms", ms(at(0.99)));
        summary.put("max_ms", ms(self.latencies_us.last().copied().unwrap_or(0)));
    }
}

/// The result line: `key=value` pairs in insertion order.
#[derive(Default)]
pub struct Summary {
    pairs: Vec<(String, String)>,
}

impl Summary {
    pub fn put(&mut self, key: &str, value: impl ToString) {
        self.pairs.push((key.to_string(), value.to_string()));
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn line(&self) -> String {
        let parts: Vec<String> = self.pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.join(" ")
    }

    /// The same pairs as a JSON object; values that read as numbers become numbers.
    pub fn json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (k, v) in &self.pairs {
            let value = if let Ok(n) = v.parse::<i64>() {
                serde_json::json!(n)
            } else {
                match v.parse::<f64>() {
                    Ok(n) if n.is_finite() => serde_json::json!(n),
                    _ => serde_json::Value::String(v.clone()),
                }
            };
            map.insert(k.clone(), value);
        }
        serde_json::Value::Object(map)
    }
}

/// Resident set size of process `pid` in bytes, from `/proc/<pid>/status` (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time (user + system, every thread) process `pid` has used, in microseconds, from
/// `/proc/<pid>/stat`; `None` for `self` means this process.
pub fn cpu_us(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".into(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // After "pid (comm) " come the state (field 3) and on: utime and stime are fields 14, 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 1_000_000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a constant of the system.
    let hz = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

/// CPU used by the server (`--server-pid`) and by this generator between two points.
#[derive(Clone, Copy)]
pub struct CpuMark {
    server: Option<u64>,
    own: Option<u64>,
    at: std::time::Instant,
}

impl CpuMark {
    pub fn now(server_pid: Option<u32>) -> CpuMark {
        CpuMark {
            server: server_pid.and_then(|p| cpu_us(Some(p))),
            own: cpu_us(None),
            at: Instant::now(),
        }
    }

    /// Adds `server_cpu_<name>_ms`, `gen_cpu_<name>_ms` (CPU time since `self`) and, when
    /// `ops` is given, `server_cpu_us_per_<op>` to `summary`.
    pub fn put_since(
        &self,
        later: &CpuMark,
        name: &str,
        ops: Option<(&str, u64)>,
        s: &mut Summary,
    ) {
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        // Puts `<who>_cpu_<name>_ms` and `…_pct` (of one core); returns the µs used.
        let mut put = |who: &str, a: Option<u64>, b: Option<u64>| {
            let used = b?.saturating_sub(a?);
            let f = used as f64;
            s.put(
                &format!("{who}_cpu_{name}_ms"),
                format!("{:.0}", f / 1000.0),
            );
            s.put(
                &format!("{who}_cpu_{name}_pct"),
                format!("{:.0}", f / wall / 1e4),
            );
            Some(used)
        };
        let server = put("server", self.server, later.server);
        put("gen", self.own, later.own);
        if let (Some(used), Some((op, n))) = (server, ops) {
            let per = used as f64 / n.max(1) as f64;
            s.put(&format!("server_cpu_us_per_{op}"), format!("{per:.1}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_line() {
        let mut t = Tally {
            latencies_us: (1..=100).map(|i| i * 1000).collect(),
            ..Tally::default()
        };
        let mut s = Summary::default();
        s.put("mode", "rest");
        t.add_latency(&mut s);
        assert_eq!(
            s.line(),
            "mode=rest p50_ms=50.000 p99_ms=99.000 max_ms=100.000"
        );
        assert_eq!(s.json()["p99_ms"], 99.0);
    }
}
