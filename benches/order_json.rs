//! The body of the REST order list (`GET /api/v1/tenants/{t}/orders`, 50 orders, the default
//! limit) as the handler writes it, next to serde_json writing the same document from a
//! generic `serde_json::Value`.
//!
//! `cargo bench --bench order_json`. Figures are in docs/benchmarks.md.
//!
//! - `order_list/body_50`: `{"items": [...]}` for 50 orders shaped like the load generator's
//!   seed data (one line each, a note), serialized exactly as the handler does it
//!   (`api::list_body`).
//! - `raw/value_same_body`: the same body parsed once into a `serde_json::Value`, then
//!   serialized: the same strings to escape and the same bytes to write, with no typed fields
//!   (UUIDs, timestamps, the status) to format on the way.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rampart::ids::{OrderId, TenantId, UserId};
use rampart::orders::{Order, Status, StoredItems};

/// The server's allocator (src/main.rs), so the code is measured as the server runs it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn orders(n: usize) -> Vec<Order> {
    let tenant = TenantId::random();
    let user = UserId::random();
    let base = Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0).unwrap();
    (0..n)
        .map(|i| {
            let at = base + chrono::Duration::microseconds(1_000_003 * i as i64);
            Order {
                id: OrderId::random(),
                tenant_id: tenant,
                // As PostgreSQL's `jsonb` output writes the stored lines.
                items: StoredItems::from_json(
                    format!(r#"[{{"name": "item {i}", "quantity": 2, "unit_price_cents": 250}}]"#)
                        .as_bytes(),
                )
                .unwrap(),
                total_cents: 500,
                status: Status::Open,
                note: Some("seed".into()),
                created_by: user,
                created_at: at,
                updated_at: at,
            }
        })
        .collect()
}

fn body(c: &mut Criterion) {
    let list = orders(50);
    let len = rampart::api::list_body(&list).len();

    let mut group = c.benchmark_group("order_list");
    group.throughput(Throughput::Bytes(len as u64));
    group.bench_function("body_50", |b| {
        b.iter(|| rampart::api::list_body(black_box(&list)))
    });
    group.finish();

    let value: serde_json::Value = serde_json::from_slice(&rampart::api::list_body(&list)).unwrap();
    let mut group = c.benchmark_group("raw");
    group.throughput(Throughput::Bytes(len as u64));
    group.bench_function("value_same_body", |b| {
        b.iter(|| serde_json::to_vec(black_box(&value)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, body);
criterion_main!(benches);
