//! The audit search over a file: newest first, every event once across pages (with events
//! arriving meanwhile), the binary search over large files, the filters.

use std::io::Write;

use super::*;

struct Log {
    dir: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl Log {
    /// A file of events `1..=n`: odd ones `auth.logout` of tenant `t`, even ones
    /// `auth.login_failed` by `someone@x.example`, one second apart from 2026-01-01.
    fn new(n: u64, t: TenantId) -> Log {
        let dir = std::env::temp_dir().join(format!("rampart-query-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let log = Log { dir, path };
        log.append(1..=n, t);
        log
    }

    fn append(&self, seqs: std::ops::RangeInclusive<u64>, t: TenantId) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .unwrap();
        for i in seqs {
            let ts = DateTime::from_timestamp(1_767_225_600 + i as i64, 0).unwrap();
            let (kind, email, tenant) = if i % 2 == 0 {
                ("auth.login_failed", "someone@x.example", "null".to_string())
            } else {
                ("auth.logout", "other@x.example", format!("\"{t}\""))
            };
            writeln!(
                f,
                "{{\"seq\":{i},\"ts\":\"{}\",\"kind\":\"{kind}\",\"severity\":\"info\",\
                 \"actor\":{{\"user_id\":null,\"email\":\"{email}\",\"role\":null}},\
                 \"tenant_id\":{tenant},\"target_tenant_id\":null,\"pad\":\"{}\"}}",
                ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "x".repeat(100)
            )
            .unwrap();
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

/// Every page of `filter` with `limit`, following the cursors.
async fn walk(log: &Log, filter: &Filter, limit: i64, between: impl Fn(usize)) -> Vec<u64> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for n in 0.. {
        let page = Page::parse(LIST, Some(limit), cursor.as_deref()).unwrap();
        let got = search(&log.path, "abcdef", filter.clone(), page)
            .await
            .unwrap();
        assert!(got.items.len() <= limit as usize);
        all.extend(seqs(&got.items));
        between(n);
        match got.next_cursor {
            Some(c) => cursor = Some(c),
            None => return all,
        }
    }
    unreachable!()
}

#[actix_web::test]
async fn paging_visits_every_event_once_newest_first_while_events_arrive() {
    let t = TenantId::random();
    // About 1.3 MB: several chunks, so the binary search narrows before reading.
    let log = Log::new(10_000, t);
    let added = std::cell::Cell::new(10_000);
    let all = walk(&log, &Filter::default(), 200, |_| {
        let from = added.get() + 1;
        log.append(from..=from + 4, t);
        added.set(from + 4);
    })
    .await;
    assert_eq!(all, (1..=10_000).rev().collect::<Vec<u64>>());
}

#[actix_web::test]
async fn filters_keep_only_matching_events_across_pages() {
    let t = TenantId::random();
    let log = Log::new(3_000, t);
    let logout = Filter {
        kind: Some(Kind::AuthLogout),
        ..Filter::default()
    };
    let odd = walk(&log, &logout, 7, |_| {}).await;
    assert_eq!(
        odd,
        (1..=3_000).rev().filter(|i| i % 2 == 1).collect::<Vec<_>>()
    );
    let by_email = Filter {
        actor: Some(ActorMatch::Email("SOMEONE@x.example".into())),
        ..Filter::default()
    };
    let even = walk(&log, &by_email, 200, |_| {}).await;
    assert_eq!(even.len(), 1_500);
    assert!(even.iter().all(|i| i % 2 == 0));
    let of_tenant = Filter {
        tenant: Some(t),
        ..Filter::default()
    };
    assert_eq!(walk(&log, &of_tenant, 200, |_| {}).await, odd);
    let other = Filter {
        tenant: Some(TenantId::random()),
        ..Filter::default()
    };
    assert!(walk(&log, &other, 200, |_| {}).await.is_empty());
    let at = |i: i64| DateTime::from_timestamp(1_767_225_600 + i, 0).unwrap();
    let window = Filter {
        since: Some(at(100)),
        until: Some(at(110)),
        ..Filter::default()
    };
    assert_eq!(
        walk(&log, &window, 3, |_| {}).await,
        (100..110).rev().collect::<Vec<u64>>()
    );
}

#[actix_web::test]
async fn a_cursor_of_another_log_is_refused() {
    let log = Log::new(10, TenantId::random());
    let page = Page::parse(LIST, Some(2), None).unwrap();
    let first = search(&log.path, "abcdef", Filter::default(), page)
        .await
        .unwrap();
    let cursor = first.next_cursor.unwrap();
    let page = Page::parse(LIST, Some(2), Some(&cursor)).unwrap();
    assert_eq!(
        search(&log.path, "012345", Filter::default(), page).await,
        Err(SearchError::Page(PageError::Cursor))
    );
}

#[actix_web::test]
async fn a_log_that_cannot_be_read_is_an_error_not_an_empty_page() {
    let log = Log::new(3, TenantId::random());
    let search_at = async |path: &std::path::Path| {
        let page = Page::parse(LIST, Some(2), None).unwrap();
        search(path, "abcdef", Filter::default(), page).await
    };
    assert_eq!(seqs(&search_at(&log.path).await.unwrap().items), [3, 2]);
    // Gone, then a directory where the file was.
    let missing = log.dir.join("moved-away.log");
    assert!(matches!(
        search_at(&missing).await,
        Err(SearchError::Unreadable(_))
    ));
    std::fs::remove_file(&log.path).unwrap();
    std::fs::create_dir(&log.path).unwrap();
    assert!(matches!(
        search_at(&log.path).await,
        Err(SearchError::Unreadable(_))
    ));
}
