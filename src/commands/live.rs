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

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use slog::Logger;

use super::args::Wait;
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

/// What becomes of a request no server answered in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// Withdrawn (unless a server took it meanwhile): nothing is done, exit 69.
    Withdraw,
    /// Left for the next server to carry out (the follow-up of a change already committed):
    /// exit 75.
    Keep,
}

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

/// Asks a running server to carry out `action` and waits up to `wait` for its answer.
pub async fn ask(
    pool: &DbPool,
    action: &str,
    details: Value,
    wait: Wait,
    unanswered: Unanswered,
) -> anyhow::Result<Value> {
    let id = pool.submit_request(action, &details).await?;
    let deadline = Instant::now() + Duration::from_secs(wait.secs);
    loop {
        match pool.request_state(id).await? {
            RequestState::Answered(answer) => {
                pool.forget_request(id).await?;
                return outcome(answer);
            }
            RequestState::Gone => anyhow::bail!("the request disappeared before it was answered"),
            RequestState::Pending if Instant::now() >= deadline => break,
            RequestState::Pending => actix_web::rt::time::sleep(POLL_EVERY).await,
        }
    }
    if unanswered == Unanswered::Keep {
        let waited = format!("no running server answered within {} s", wait.secs);
        return Err(queued(&waited));
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

/// Asks a running server for the follow-up of a change this command committed (see
/// [`Unanswered::Keep`]); in embedded mode with no server on the data directory, the request
/// waits for the next one at once.
pub async fn follow_up(
    pool: &DbPool,
    database: &crate::server::Database,
    details: Value,
    wait: Wait,
) -> anyhow::Result<Value> {
    if database.started_here() {
        pool.submit_request(FOLLOW_UP, &details).await?;
        return Err(queued("no server runs on this data directory"));
    }
    ask(pool, FOLLOW_UP, details, wait, Unanswered::Keep).await
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
        ask(&pool, action, details, wait, Unanswered::Withdraw).await
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
