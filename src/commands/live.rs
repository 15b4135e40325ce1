//! Commands that need a running server: `rampart ban list|lift` and `rampart session revoke`.
//!
//! Bans live in the servers' limiters (and Redis), sessions in Redis or a server's memory,
//! sockets in each server's hub, and only a server may append to the audit trail. So these
//! commands ask a running server through PostgreSQL ([`ask`]: a row in `operator_requests`,
//! see `db::operator::requests`), whichever instance takes it first: that server records the
//! audit event (actor `cli`, the OS user) on disk, then acts with its own services, so the
//! effect reaches every instance, and writes the answer the command prints. This works in
//! embedded mode and with or without Redis. With no server running nothing can be done: the
//! request is withdrawn and the command exits 69.
//!
//! The user and tenant commands commit their change themselves and then ask for its
//! follow-up ([`follow_up`]): that request is never withdrawn, so they exit 75, never 69, when
//! no server answers, and also when the answering server carried it out but could not write
//! the audit log yet (the request stays queued until its event is on disk).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use slog::Logger;

use super::args::{FollowWait, Wait};
use super::open;
use super::output::{print_json, Exit, Failure};
use crate::config::Config;
use crate::db::{DbPool, RequestState, Withdrawal};
use crate::server::operator_requests::action::{BAN_LIFT, BAN_LIST, FOLLOW_UP, SESSION_REVOKE};

/// How often the answer is looked for.
const POLL_EVERY: Duration = Duration::from_millis(100);

fn no_server(wait: Wait) -> anyhow::Error {
    Failure::new(
        Exit::NoServer,
        format!(
            "no running server answered within {} s, so nothing was done (the request was \
             withdrawn): start `rampart serve` on the same database and try again",
            wait.secs
        ),
    )
    .into()
}

/// The answer's `ok` value, or its error as a [`Failure`] (`not_found`: exit 3).
fn outcome(answer: Value) -> anyhow::Result<Value> {
    if let Some(ok) = answer.get("ok") {
        return Ok(ok.clone());
    }
    let code = answer["error"]["code"].as_str().unwrap_or("internal");
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or("the server gave no reason")
        .to_string();
    let exit = if code == "not_found" {
        Exit::NotFound
    } else {
        Exit::Failed
    };
    Err(Failure::new(exit, message).into())
}

/// What polling a request heard before the wait ended.
enum Heard {
    Answered(Value),
    /// Carried out; its event is still to be recorded (the request stays pending).
    Deferred(Value),
    Nothing,
}

/// Polls request `id` until it is answered or deferred, or `wait` ends.
async fn listen(pool: &DbPool, id: i64, wait: Duration) -> anyhow::Result<Heard> {
    let deadline = Instant::now() + wait;
    loop {
        match pool.request_state(id).await? {
            RequestState::Answered(answer) => {
                pool.forget_request(id).await?;
                return Ok(Heard::Answered(answer));
            }
            RequestState::Deferred(answer) => return Ok(Heard::Deferred(answer)),
            RequestState::Gone => anyhow::bail!("the request disappeared before it was answered"),
            RequestState::Pending if Instant::now() >= deadline => return Ok(Heard::Nothing),
            RequestState::Pending => actix_web::rt::time::sleep(POLL_EVERY).await,
        }
    }
}

/// Exit 75 for a change made whose follow-up no server took in time.
fn queued(waited: &str) -> anyhow::Error {
    Failure::new(
        Exit::Pending,
        format!(
            "the change is made, but {waited} to take its follow-up (its audit event and the \
             live effect): the next server to run carries it out"
        ),
    )
    .into()
}

/// Exit 75 for a change made and in effect whose audit event a server could not write yet.
fn recorded_later(answer: &Value) -> anyhow::Error {
    let code = answer["error"]["code"]
        .as_str()
        .unwrap_or("audit_unavailable");
    Failure::new(
        Exit::Pending,
        format!(
            "the change is made and in effect, but a running server could not record its audit \
             event yet ({code}); the request stays queued and its event is recorded as soon as \
             the audit log can be written"
        ),
    )
    .into()
}

/// Asks a running server to carry out `action` and waits up to `wait` for its answer; with no
/// answer the request is withdrawn (exit 69) unless a server took it meanwhile (exit 75).
pub async fn ask(pool: &DbPool, action: &str, details: Value, wait: Wait) -> anyhow::Result<Value> {
    let id = pool.submit_request(action, &details).await?;
    match listen(pool, id, Duration::from_secs(wait.secs)).await? {
        Heard::Answered(answer) => return outcome(answer),
        Heard::Deferred(answer) => return Err(recorded_later(&answer)),
        Heard::Nothing => {}
    }
    match pool.withdraw_request(id).await? {
        Withdrawal::Withdrawn => Err(no_server(wait)),
        Withdrawal::Answered(answer) => {
            pool.forget_request(id).await?;
            outcome(answer)
        }
        Withdrawal::InProgress => Err(Failure::new(
            Exit::Pending,
            format!(
                "a server took the request (id {id}) but had not finished within {} s; it will \
                 be carried out (its audit event is the record)",
                wait.secs
            ),
        )
        .into()),
    }
}

/// Asks a running server for the follow-up of a change this command committed: its audit
/// event and live effect. The request is never withdrawn (the change stands): with no answer
/// in `wait`, or when the server could not write the audit log, it stays for a server to carry
/// out, and the outcome is exit 75. Returns what the server did (`ok`, or the interim answer's
/// `applied`; null when nothing is known yet) and the outcome. In embedded mode with no server
/// on the data directory, the request waits for the next one at once.
pub async fn follow_up(
    pool: &DbPool,
    database: &crate::server::Database,
    details: Value,
    wait: FollowWait,
) -> anyhow::Result<(Value, anyhow::Result<()>)> {
    if database.started_here() {
        pool.submit_request(FOLLOW_UP, &details).await?;
        return Ok((
            Value::Null,
            Err(queued("no server runs on this data directory")),
        ));
    }
    let id = pool.submit_request(FOLLOW_UP, &details).await?;
    Ok(
        match listen(pool, id, Duration::from_secs(wait.secs)).await? {
            Heard::Answered(answer) => match outcome(answer) {
                Ok(done) => (done, Ok(())),
                Err(e) => (Value::Null, Err(e)),
            },
            Heard::Deferred(answer) => (answer["applied"].clone(), Err(recorded_later(&answer))),
            Heard::Nothing => {
                let waited = format!("no running server answered within {} s", wait.secs);
                (Value::Null, Err(queued(&waited)))
            }
        },
    )
}

/// Leaves the record of a change this command committed for a running server (or the next
/// to start) to put on the trail, without waiting: the change needs no live effect.
pub async fn record_later(pool: &DbPool, details: &Value) -> anyhow::Result<()> {
    pool.submit_request(FOLLOW_UP, details).await?;
    Ok(())
}

/// Opens the database and asks; in embedded mode with no server on the data directory (this
/// command had to start the cluster itself) no server can answer: exit 69 at once.
async fn ask_running(
    config: &Config,
    log: &Logger,
    action: &str,
    details: Value,
    wait: Wait,
) -> anyhow::Result<Value> {
    let (mut database, pool) = open(config, log).await?;
    let answer = if database.started_here() {
        Err(no_server(wait))
    } else {
        ask(&pool, action, details, wait).await
    };
    database.shutdown();
    answer
}

/// `rampart ban list`: one JSON array of `{ip, until, violations}`.
pub async fn ban_list(config: &Config, log: &Logger, wait: Wait) -> anyhow::Result<()> {
    let bans = ask_running(config, log, BAN_LIST, json!({}), wait).await?;
    print_json(&bans)
}

/// `rampart ban lift IP`: `{ip, lifted: true}`; exit 3 when the address is not banned.
pub async fn ban_lift(
    config: &Config,
    log: &Logger,
    ip: std::net::IpAddr,
    wait: Wait,
) -> anyhow::Result<()> {
    let lifted = ask_running(config, log, BAN_LIFT, json!({"ip": ip}), wait).await?;
    print_json(&lifted)
}

/// `rampart session revoke --user EMAIL`: `{user_id, email, sessions_ended}`; exit 3 for an
/// unknown email.
pub async fn session_revoke(
    config: &Config,
    log: &Logger,
    email: &str,
    wait: Wait,
) -> anyhow::Result<()> {
    let ended = ask_running(
        config,
        log,
        SESSION_REVOKE,
        json!({"email": email.trim()}),
        wait,
    )
    .await?;
    print_json(&ended)
}
