//! The tenant-scoped transaction and the REST order list, next to the same work sent to
//! PostgreSQL as one simple-query batch.
//!
//! `cargo bench --bench tenant_tx`. Starts a private PostgreSQL cluster (fsync on, as in
//! production), migrates it, seeds one tenant with 50 orders through the library, and runs:
//!
//! - `tenant_tx/empty`: `DbPool::in_tenant` with no query (BEGIN + role + settings, COMMIT).
//! - `tenant_tx/list50`: `orders::list` (what `GET /api/v1/tenants/{t}/orders` runs), 50 rows:
//!   `DbPool::one_load`, which sends BEGIN, the role and settings, the query and COMMIT
//!   together (one round trip), and decodes the rows.
//! - `raw/list50_one_round_trip`: BEGIN, `SET LOCAL ROLE`, the two settings, the same query
//!   and COMMIT in one simple-query message on one connection (rows are read and dropped).
//!
//! Figures are in docs/benchmarks.md.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use rampart::db::{Caller, DbPool, OperatorRecord, PlatformScope, Scope, TenantScope};
use rampart::embedded_pg::{find_binaries, Cluster, ClusterOptions};
use rampart::ids::Role;
use rampart::orders::{self, NewOrder, OrderItem};
use rampart::tenants::{self, NewTenant};
use rampart::users::{self, NewUser};

/// The server's allocator (src/main.rs), so the code is measured as the server runs it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const ORDERS: usize = 50;

/// The operator's door, as the CLI opens it (queued for the audit trail), for seeding.
async fn operator(pool: &DbPool) -> PlatformScope {
    let record = OperatorRecord::queue(pool, "bench seed", serde_json::json!({}))
        .await
        .unwrap();
    PlatformScope::operator_cli(record)
}

fn cluster_dir() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("rampart-bench-tx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Run as root, PostgreSQL runs as `postgres` and must be able to enter.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Creates the database, migrates it and seeds one tenant, one user and their orders.
async fn seed(cluster: &Cluster) -> (DbPool, TenantScope) {
    let mut admin = AsyncPgConnection::establish(&cluster.url("postgres"))
        .await
        .unwrap();
    admin.batch_execute("CREATE DATABASE bench").await.unwrap();
    let url = cluster.url("bench");
    rampart::db::migrate::run(&url).await.unwrap();
    let pool = DbPool::new(&url, 4).unwrap();
    let new = NewTenant {
        slug: "bench".into(),
        name: "Bench".into(),
    };
    let tenant = tenants::create(&pool, &operator(&pool).await, &new)
        .await
        .unwrap();
    let user = users::create(
        &pool,
        &operator(&pool).await.with_target(Some(tenant.id)),
        NewUser {
            email: "staff@bench.example".into(),
            role: Role::TenantStaff,
            password: Some("bench password 123".into()),
        },
    )
    .await
    .unwrap();
    let staff = Caller::new(user.user.id, Some(tenant.id), Role::TenantStaff, false);
    let Ok(Scope::Tenant(scope)) = Scope::for_tenant(&staff, tenant.id) else {
        panic!("a member reaches their tenant");
    };
    for i in 0..ORDERS {
        let order = NewOrder {
            items: vec![OrderItem {
                name: format!("item {i}"),
                quantity: 2,
                unit_price_cents: 350,
            }],
            note: Some("bench".into()),
            total_cents: 700,
        };
        let s = Scope::Tenant(scope);
        orders::create(&pool, &s, order).await.unwrap();
    }
    (pool, scope)
}

/// The list query as `orders::list` sends it, with the values inlined.
fn one_batch(scope: &TenantScope) -> String {
    format!(
        "BEGIN; SET LOCAL ROLE rampart_app; \
         SELECT set_config('app.tenant_id', '{t}', true), set_config('app.user_id', '{u}', true); \
         SELECT id, tenant_id, items, total_cents, status, note, created_by, created_at, updated_at \
         FROM orders WHERE tenant_id = '{t}' ORDER BY created_at DESC, id DESC LIMIT {ORDERS}; \
         COMMIT",
        t = scope.tenant(),
        u = scope.user()
    )
}

fn tenant_tx(c: &mut Criterion) {
    let bins = find_binaries().expect("PostgreSQL server binaries (scripts/deps.sh postgres)");
    let mut cluster = Cluster::start(&cluster_dir(), &bins, &ClusterOptions::default()).unwrap();
    let rt = actix_rt::System::new();
    let (pool, scope) = rt.block_on(seed(&cluster));
    let tenant_scope = Scope::Tenant(scope);

    let mut group = c.benchmark_group("tenant_tx");
    group.throughput(Throughput::Elements(1));
    group.bench_function("empty", |b| {
        b.iter(|| {
            rt.block_on(pool.in_tenant(&scope, async |_| Ok(())))
                .unwrap()
        })
    });
    let first_page = rampart::page::Page::parse(orders::LIST, Some(50), None).unwrap();
    group.bench_function("list50", |b| {
        b.iter(|| {
            let rows = rt
                .block_on(orders::list(&pool, &tenant_scope, None, &first_page))
                .unwrap();
            assert_eq!(rows.items.len(), ORDERS);
        })
    });
    group.finish();

    let mut raw = rt
        .block_on(AsyncPgConnection::establish(&cluster.url("bench")))
        .unwrap();
    let sql = one_batch(&scope);
    let mut group = c.benchmark_group("raw");
    group.throughput(Throughput::Elements(1));
    group.bench_function("list50_one_round_trip", |b| {
        b.iter(|| rt.block_on(raw.batch_execute(&sql)).unwrap())
    });
    group.finish();
    drop(raw);
    drop(pool);
    cluster.stop();
    let _ = std::fs::remove_dir_all(cluster.dir());
}

criterion_group!(benches, tenant_tx);
criterion_main!(benches);
