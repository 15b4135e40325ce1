//! The actor without Redis: every decision through its mailbox, on the state it owns.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use actix::{Actor, Context, Handler};

use super::EnforceBan;
use crate::config::Config;
use crate::rate_limit::{Admission, ConnId, Limiter, ViolationOutcome};
use crate::store::SharedStore;

async fn limiter(vars: &[(&str, &str)]) -> Limiter {
    let vars = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = Config::from_map(vars).expect("config");
    let log = crate::telemetry::logging::discard();
    let store = SharedStore::connect(None, "actor-test", log).await.unwrap();
    Limiter::start(store, &config.limits)
}

/// Records the bans it is told to enforce.
struct Enforcer(Arc<Mutex<Vec<IpAddr>>>);

/// Answers what the enforcer has seen; its mailbox is first in, first out, so the answer
/// includes every ban sent to it before this question.
#[derive(actix::Message)]
#[rtype(result = "Vec<IpAddr>")]
struct Seen;

impl Handler<Seen> for Enforcer {
    type Result = actix::MessageResult<Seen>;

    fn handle(&mut self, _: Seen, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(self.0.lock().unwrap().clone())
    }
}

impl Actor for Enforcer {
    type Context = Context<Self>;
}

impl Handler<EnforceBan> for Enforcer {
    type Result = ();

    fn handle(&mut self, msg: EnforceBan, _: &mut Context<Self>) {
        self.0.lock().unwrap().push(msg.ip);
    }
}

#[actix_web::test]
async fn a_ban_is_decided_enforced_listed_and_lifted_by_the_actor() {
    let l = limiter(&[("RAMPART_BAN_AFTER_VIOLATIONS", "2")]).await;
    let enforcer = Enforcer(Arc::new(Mutex::new(Vec::new()))).start();
    l.enforce_bans_with(enforcer.clone().recipient());
    // An IPv6 client is known by its /64.
    let ip: IpAddr = "2001:db8::7".parse().unwrap();
    let key: IpAddr = "2001:db8::".parse().unwrap();
    assert_eq!(l.violation(ip).await.unwrap(), ViolationOutcome::Counted(1));
    let ViolationOutcome::Banned(ban) = l.violation(ip).await.unwrap() else {
        panic!("the second violation bans")
    };
    assert_eq!(ban.ip, key);
    l.announce_ban(&ban);
    // Once the actor answers this, it has handled the announcement and told the enforcer.
    assert!(matches!(l.admit(ip).await.unwrap(), Admission::Banned(_)));
    assert_eq!(enforcer.send(Seen).await.unwrap(), vec![key]);
    assert_eq!(l.active_bans().await, vec![ban]);
    assert!(l.lift("2001:db8::99".parse().unwrap()).await.unwrap());
    assert!(!l.lift(ip).await.unwrap(), "lifted once");
    assert_eq!(l.admit(ip).await.unwrap(), Admission::Allowed);
}

#[actix_web::test]
async fn connection_slots_are_held_until_released() {
    let l = limiter(&[("RAMPART_WS_MAX_CONNECTIONS_PER_USER", "1")]).await;
    let user = crate::ids::UserId::random();
    let (a, b) = (ConnId::new(), ConnId::new());
    assert!(l.acquire(user, a).await.unwrap().allowed);
    assert!(!l.acquire(user, b).await.unwrap().allowed);
    l.release(user, a);
    // The release is in the mailbox before the next request.
    assert!(l.acquire(user, b).await.unwrap().allowed);
}

#[actix_web::test]
async fn a_login_refused_by_one_log_is_not_kept_in_the_other() {
    let l = limiter(&[
        ("RAMPART_LOGIN_ACCOUNT_LIMIT", "1"),
        ("RAMPART_LOGIN_IP_LIMIT", "10"),
    ])
    .await;
    let ip: IpAddr = "192.0.2.9".parse().unwrap();
    let kept = l.reserve_login(ip, "a@example.com").await.unwrap().unwrap();
    assert!(l.reserve_login(ip, "a@example.com").await.unwrap().is_err());
    // Refunded: the account has its slot back.
    l.refund_login(kept).await.unwrap();
    let again = l.reserve_login(ip, "A@example.com ").await.unwrap();
    assert!(again.is_ok(), "{again:?}");
}
