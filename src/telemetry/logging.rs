//! Structured logs: JSON lines when stdout is not a terminal, readable text when it is.
//! Records are formatted on a dedicated thread (slog-async), so logging never blocks a worker
//! on terminal or pipe I/O. A record logged while a request is served carries its
//! `request_id` and `client` address, and once the caller is authenticated its `user_id` and
//! `tenant_id` (see [`super::request_id`]).

use std::io::IsTerminal;

use slog::{o, BorrowedKV, Drain, Level, Logger, OwnedKVList, Record, RecordStatic, KV};

use super::request_id::{self, Context};

/// Builds the root logger at `level`.
pub fn build(level: Level) -> Logger {
    let drain = if std::io::stdout().is_terminal() {
        let decorator = slog_term::TermDecorator::new().stdout().build();
        let term = slog_term::FullFormat::new(decorator).build().fuse();
        slog_async::Async::new(term).build().fuse()
    } else {
        let json = slog_json::Json::new(std::io::stdout())
            .add_default_keys()
            .build()
            .fuse();
        slog_async::Async::new(json).build().fuse()
    };
    Logger::root(
        WithRequestId(drain.filter_level(level)).fuse(),
        o!("service" => "rampart"),
    )
}

/// A logger that drops everything (tests that do not look at logs).
pub fn discard() -> Logger {
    Logger::root(slog::Discard, o!())
}

/// Adds the request's `request_id`, `client`, `user_id` and `tenant_id` (those known) to
/// every record logged while it is served. It runs on the logging task's thread, before
/// records are handed to the formatting thread, so it can read the task-local context.
pub struct WithRequestId<D>(pub D);

impl<D: Drain> Drain for WithRequestId<D> {
    type Ok = D::Ok;
    type Err = D::Err;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<D::Ok, D::Err> {
        let logged = request_id::with_current(|context| {
            let kv = (record.kv(), RequestKv(context));
            let rstatic = RecordStatic {
                location: record.location(),
                tag: record.tag(),
                level: record.level(),
            };
            self.0.log(
                &Record::new(&rstatic, record.msg(), BorrowedKV(&kv)),
                values,
            )
        });
        match logged {
            Some(result) => result,
            None => self.0.log(record, values),
        }
    }

    fn is_enabled(&self, level: Level) -> bool {
        self.0.is_enabled(level)
    }
}

/// The request's fields of a record.
struct RequestKv<'a>(&'a Context);

impl KV for RequestKv<'_> {
    fn serialize(&self, _: &Record, out: &mut dyn slog::Serializer) -> slog::Result {
        let c = self.0;
        out.emit_str("request_id", &c.id)?;
        if let Some(ip) = c.client {
            out.emit_arguments("client", &format_args!("{ip}"))?;
        }
        if let Some(caller) = c.caller() {
            out.emit_arguments("user_id", &format_args!("{}", caller.user))?;
            if let Some(tenant) = caller.tenant {
                out.emit_arguments("tenant_id", &format_args!("{tenant}"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use slog::info;

    use super::*;

    /// Keeps the serialized lines.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[actix_web::test]
    async fn lines_logged_while_serving_a_request_carry_its_id() {
        let out = Lines::default();
        let json = slog_json::Json::default(out.clone());
        let log = Logger::root(WithRequestId(Mutex::new(json)).fuse(), o!());
        info!(log, "outside"; "k" => 1);
        let client = Some("203.0.113.9".parse().unwrap());
        let (user, tenant) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        request_id::scope("req-9".into(), client, async {
            info!(log, "inside"; "k" => 2);
            request_id::set_caller(user, Some(tenant));
            info!(log, "authenticated"; "k" => 3);
        })
        .await;
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        for field in ["request_id", "client", "user_id", "tenant_id"] {
            assert!(lines[0].get(field).is_none(), "{field}");
        }
        assert_eq!(lines[0]["k"], 1);
        assert_eq!(lines[1]["request_id"], "req-9");
        assert_eq!(lines[1]["client"], "203.0.113.9");
        assert!(lines[1].get("user_id").is_none());
        assert_eq!(lines[1]["k"], 2);
        assert_eq!(lines[1]["msg"], "inside");
        assert_eq!(lines[2]["user_id"], user.to_string());
        assert_eq!(lines[2]["tenant_id"], tenant.to_string());
        assert_eq!(lines[2]["k"], 3);
    }
}
