//! `rest`: tenant-scoped order reads and writes at a fixed concurrency for a duration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{self, Signed};
use crate::stats::CpuMark;
use crate::stats::{Summary, Tally};
use crate::ws::on_threads;
use crate::Common;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    /// `GET /api/v1/tenants/{t}/orders?limit=L`
    List,
    /// `POST /api/v1/tenants/{t}/orders`
    Create,
    /// Nine lists to one create.
    Mixed,
}

pub struct RestArgs {
    pub concurrency: usize,
    pub duration: Duration,
    pub op: Op,
    pub limit: u32,
}

/// One caller: requests back to back until `until`.
async fn caller(base: Arc<str>, who: Signed, op: Op, limit: u32, until: Instant) -> Tally {
    let http = client::http();
    let list_url = format!(
        "{base}/api/v1/tenants/{}/orders?limit={limit}",
        who.tenant_id
    );
    let create_url = format!("{base}/api/v1/tenants/{}/orders", who.tenant_id);
    let body = serde_json::json!({
        "items": [{"name": "load", "quantity": 2, "unit_price_cents": 350}],
        "note": "load rest",
    });
    let mut t = Tally::default();
    let mut n: u64 = 0;
    while Instant::now() < until {
        n += 1;
        let create = match op {
            Op::List => false,
            Op::Create => true,
            Op::Mixed => n.is_multiple_of(10),
        };
        let started = Instant::now();
        let sent = if create {
            http.post(&create_url)
                .bearer_auth(&who.token)
                .send_json(&body)
                .await
        } else {
            http.get(&list_url).bearer_auth(&who.token).send().await
        };
        match sent {
            Ok(mut res) => {
                let status = res.status();
                let read = res.body().limit(4 * 1024 * 1024).await;
                if status.is_success() && read.is_ok() {
                    t.ok += 1;
                    t.latencies_us.push(started.elapsed().as_micros() as u64);
                } else if !status.is_success() {
                    t.error(status.as_u16().to_string());
                } else {
                    t.error("io");
                }
            }
            Err(e) => t.error(if e.to_string().contains("imeout") {
                "timeout"
            } else {
                "io"
            }),
        }
    }
    t
}

pub fn rest(common: &Common, base: String, signed: Vec<Signed>, a: RestArgs) -> Summary {
    let threads = common.threads.min(a.concurrency).max(1);
    let base: Arc<str> = base.into();
    let until = Instant::now() + a.duration;
    let (concurrency, op, limit) = (a.concurrency, a.op, a.limit);
    let signed = Arc::new(signed);
    let started = Instant::now();
    let cpu_start = CpuMark::now(common.server_pid);
    let tallies = on_threads(threads, move |n| {
        let (base, signed) = (base.clone(), signed.clone());
        async move {
            let callers = (n..concurrency).step_by(threads).map(|i| {
                let who = signed[i % signed.len()].clone();
                caller(base.clone(), who, op, limit, until)
            });
            let mut t = Tally::default();
            for own in futures_util::future::join_all(callers).await {
                t.merge(own);
            }
            t
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let cpu_end = CpuMark::now(common.server_pid);
    let mut total = Tally::default();
    for t in tallies {
        total.merge(t);
    }
    let mut s = Summary::default();
    s.put("mode", "rest");
    s.put("op", format!("{op:?}").to_lowercase());
    s.put("concurrency", a.concurrency);
    s.put("requests", total.ok);
    s.put("requests_per_sec", format!("{:.0}", total.ok as f64 / secs));
    total.add_latency(&mut s);
    s.put("errors", total.error_total());
    s.put("errors_by_code", total.errors_by_code());
    cpu_start.put_since(&cpu_end, "run", Some(("req", total.ok)), &mut s);
    s
}
