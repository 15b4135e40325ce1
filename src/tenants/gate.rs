//! The suspension gate: which tenants are suspended, as this instance knows it, in memory, so
//! that the check on every request, sign-in and WebSocket upgrade never asks PostgreSQL.
//!
//! What the instance knows comes from three places:
//! - at start, and then every [`RELOAD_EVERY`], the database, through the narrow
//!   `rampart_suspended_tenants()` function (ids only; see `db::suspended`). The reload is
//!   what picks up a change made where the bus does not reach (the operator's CLI, an instance
//!   that had lost Redis): such a change holds here within `RELOAD_EVERY` plus one query;
//! - a change made on this instance ([`SuspensionGate::apply`]), which holds here before the
//!   request that made it is answered;
//! - a change made on another instance, which arrives over the instance bus
//!   (`crate::store::Bus`) at once while Redis is up.
//!
//! Whenever a tenant becomes suspended here, by whichever of the three, its open sockets on
//! this instance are closed ([`CloseTenant`], handled by the WebSocket hub). A reload never
//! undoes a change that arrived while it was querying: each change bumps a generation, and a
//! reload that started before it is dropped (the next one sees the change in the database).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient, WrapFuture,
};
use serde::{Deserialize, Serialize};
use slog::{info, warn, Logger};

use crate::db::{DbError, DbPool};
use crate::ids::TenantId;
use crate::store::{Bus, SharedStore};

/// How often every instance reloads the suspended tenants from the database: the bound on how
/// long a change made without the bus (the CLI) takes to hold everywhere.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// The bus channel suspensions travel on between instances.
const CHANNEL: &str = "tenants:suspensions";

/// Close every open socket of `tenant` on this instance, with 1008 (the WebSocket hub does).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct CloseTenant {
    pub tenant: TenantId,
}

#[derive(Debug, Default)]
struct Known {
    ids: HashSet<TenantId>,
    /// Rises with every change that did not come from a reload.
    generation: u64,
}

/// This instance's view of the suspended tenants. Cheap to clone; reads never wait on I/O.
#[derive(Clone)]
pub struct SuspensionGate {
    known: Arc<RwLock<Known>>,
    sync: Option<Addr<GateSync>>,
}

impl SuspensionGate {
    /// Loads the suspended tenants, then keeps them current (reload, bus) for as long as the
    /// gate lives. Must be called on an Actix thread.
    pub async fn start(
        db: DbPool,
        store: &SharedStore,
        log: Logger,
    ) -> Result<SuspensionGate, DbError> {
        let ids = db.suspended_tenants().await?;
        if !ids.is_empty() {
            info!(log, "{} tenant(s) suspended", ids.len(); "suspended" => ids.len());
        }
        let known = Arc::new(RwLock::new(Known {
            ids: ids.into_iter().collect(),
            generation: 0,
        }));
        let sync = GateSync {
            known: known.clone(),
            bus: Bus::new(store),
            db,
            close: None,
            reloading: false,
            log,
        }
        .start();
        Ok(SuspensionGate {
            known,
            sync: Some(sync),
        })
    }

    /// A gate that knows `ids` and never changes but by [`SuspensionGate::apply`] (unit tests,
    /// tools without a server).
    pub fn fixed(ids: impl IntoIterator<Item = TenantId>) -> SuspensionGate {
        SuspensionGate {
            known: Arc::new(RwLock::new(Known {
                ids: ids.into_iter().collect(),
                generation: 0,
            })),
            sync: None,
        }
    }

    pub fn is_suspended(&self, tenant: TenantId) -> bool {
        self.known
            .read()
            .expect("suspension gate lock")
            .ids
            .contains(&tenant)
    }

    /// Whether a user of `tenant` (`None`: a platform owner) may be served.
    pub fn admits(&self, tenant: Option<TenantId>) -> bool {
        tenant.is_none_or(|t| !self.is_suspended(t))
    }

    /// A change this instance made (after it is stored): it holds here at once, is sent to
    /// the other instances, and a suspension closes the tenant's sockets here.
    pub fn apply(&self, tenant: TenantId, suspended: bool) {
        note(&self.known, tenant, suspended);
        if let Some(sync) = &self.sync {
            sync.do_send(Announce { tenant, suspended });
        }
    }

    /// Has `to` close the sockets of every tenant that becomes suspended.
    pub fn close_sockets_with(&self, to: Recipient<CloseTenant>) {
        if let Some(sync) = &self.sync {
            sync.do_send(CloseWith(to));
        }
    }
}

impl Known {
    /// Takes `fresh`, a reload that began at `generation`, unless a change arrived since
    /// (`None`); returns the tenants it newly names.
    fn reloaded(&mut self, fresh: HashSet<TenantId>, generation: u64) -> Option<Vec<TenantId>> {
        if self.generation != generation {
            return None;
        }
        let added = fresh.difference(&self.ids).copied().collect();
        self.ids = fresh;
        Some(added)
    }
}

/// Records one change (not a reload) in `known`.
fn note(known: &RwLock<Known>, tenant: TenantId, suspended: bool) {
    let mut known = known.write().expect("suspension gate lock");
    if suspended {
        known.ids.insert(tenant);
    } else {
        known.ids.remove(&tenant);
    }
    known.generation += 1;
}

/// Keeps the gate current: the periodic reload, the bus, and closing sockets.
struct GateSync {
    known: Arc<RwLock<Known>>,
    bus: Bus,
    db: DbPool,
    close: Option<Recipient<CloseTenant>>,
    /// A reload is in flight (they never overlap).
    reloading: bool,
    log: Logger,
}

impl GateSync {
    fn close(&self, tenant: TenantId) {
        if let Some(to) = &self.close {
            to.do_send(CloseTenant { tenant });
        }
    }

    fn reload(&mut self, ctx: &mut Context<Self>) {
        if self.reloading {
            return;
        }
        self.reloading = true;
        let generation = self.known.read().expect("suspension gate lock").generation;
        let db = self.db.clone();
        let query = async move { db.suspended_tenants().await };
        ctx.spawn(query.into_actor(self).map(move |found, act, _| {
            act.reloading = false;
            match found {
                Ok(ids) => act.replace(ids, generation),
                Err(e) => warn!(act.log, "cannot reload the suspended tenants"; "error" => %e),
            }
        }));
    }

    /// Takes the reloaded set, unless a change arrived since the reload began; closes the
    /// sockets of the tenants it newly names.
    fn replace(&mut self, ids: Vec<TenantId>, generation: u64) {
        let taken = {
            let mut known = self.known.write().expect("suspension gate lock");
            known.reloaded(ids.into_iter().collect(), generation)
        };
        for tenant in taken.unwrap_or_default() {
            info!(self.log, "tenant {tenant} is suspended"; "tenant_id" => %tenant);
            self.close(tenant);
        }
    }
}

impl Actor for GateSync {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.bus.listen::<News>(CHANNEL, ctx.address().recipient());
        ctx.run_interval(RELOAD_EVERY, |act, ctx| act.reload(ctx));
    }
}

/// A change made on this instance, to pass on.
#[derive(Message)]
#[rtype(result = "()")]
struct Announce {
    tenant: TenantId,
    suspended: bool,
}

/// A change another instance made, from the bus.
#[derive(Debug, Serialize, Deserialize, Message)]
#[rtype(result = "()")]
struct News {
    tenant: TenantId,
    suspended: bool,
}

#[derive(Message)]
#[rtype(result = "()")]
struct CloseWith(Recipient<CloseTenant>);

impl Handler<Announce> for GateSync {
    type Result = ();

    fn handle(&mut self, msg: Announce, _: &mut Context<Self>) {
        let news = News {
            tenant: msg.tenant,
            suspended: msg.suspended,
        };
        self.bus.publish(CHANNEL, &news);
        if msg.suspended {
            self.close(msg.tenant);
        }
    }
}

impl Handler<News> for GateSync {
    type Result = ();

    fn handle(&mut self, msg: News, _: &mut Context<Self>) {
        note(&self.known, msg.tenant, msg.suspended);
        if msg.suspended {
            self.close(msg.tenant);
        }
    }
}

impl Handler<CloseWith> for GateSync {
    type Result = ();

    fn handle(&mut self, msg: CloseWith, _: &mut Context<Self>) {
        self.close = Some(msg.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_owners_pass_and_a_suspended_tenant_does_not() {
        let (a, b) = (TenantId::random(), TenantId::random());
        let gate = SuspensionGate::fixed([a]);
        assert!(gate.admits(None));
        assert!(!gate.admits(Some(a)));
        assert!(gate.admits(Some(b)));
        gate.apply(a, false);
        gate.apply(b, true);
        assert!(gate.admits(Some(a)) && !gate.admits(Some(b)));
    }

    #[test]
    fn a_reload_that_began_before_a_change_does_not_undo_it() {
        let (a, b) = (TenantId::random(), TenantId::random());
        let known = RwLock::new(Known::default());
        let began = known.read().unwrap().generation;
        note(&known, a, true);
        let mut k = known.write().unwrap();
        assert_eq!(k.reloaded(HashSet::new(), began), None);
        assert!(k.ids.contains(&a));
        // A reload that began after the change is taken, and names what it adds.
        let now = k.generation;
        assert_eq!(k.reloaded([a, b].into_iter().collect(), now), Some(vec![b]));
        assert_eq!(k.reloaded(HashSet::new(), now), Some(vec![]));
        assert!(k.ids.is_empty());
    }
}
