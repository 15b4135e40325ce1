//! The instance bus: messages between the instances that share one Redis, over Redis pub/sub.
//!
//! On a Redis Cluster the bus uses sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`, Redis 7): a
//! channel lives in the slot of its name, so a message travels to the shard owning it and no
//! further, where a plain `PUBLISH` would be copied to every node of the cluster. The listener
//! holds a cluster connection of its own speaking RESP3, whose push messages carry the
//! subscription. When one of its node connections drops, the listener checks the master that
//! serves its channel: if that one does not answer (a failover), messages are being lost, so
//! Redis is marked down as when a single server's subscription is lost; a replica or another
//! shard going away changes nothing for the channel. When the store leaves Redis the listener
//! lets the subscription go and subscribes again once the store is back on the cluster. Messages published while an instance is not subscribed are not
//! replayed (the same as with a single server restarting).
//!
//! [`Bus::publish`] sends a serializable message on a named channel (under the key prefix)
//! without waiting; [`Bus::listen`] hands every message of a channel that another instance
//! sent to a [`Recipient`] (an instance ignores its own messages, so nothing arrives twice).
//! Both follow the store's switch: nothing is sent and nobody listens unless Redis is the
//! active backend, a failed publish or a lost subscription switches the instance to the
//! fallback (the one timeout policy), and the listener subscribes again once the probe has
//! found Redis.

use std::time::Duration;

use actix::{Message, Recipient};
use futures_util::StreamExt;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use slog::{debug, Logger};
use uuid::Uuid;

use super::conn::ClusterSeeds;
use super::{RedisClient, RedisStatus, SharedStore, CONNECT_TIMEOUT};

/// One instance's end of the bus. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    store: SharedStore,
    /// This instance's name on the bus, to recognise its own messages.
    instance: Uuid,
}

/// What travels on a channel: the message and who sent it.
#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    from: Uuid,
    msg: T,
}

impl Bus {
    pub fn new(store: &SharedStore) -> Bus {
        Bus {
            store: store.clone(),
            instance: Uuid::new_v4(),
        }
    }

    /// Sends `msg` to the other instances listening on `channel`, without waiting. Must be
    /// called on an Actix thread (an actor's or a worker's).
    pub fn publish<T: Serialize>(&self, channel: &str, msg: &T) {
        let Some(mut conn) = self.store.connection() else {
            return;
        };
        let payload = serde_json::to_string(&Envelope {
            from: self.instance,
            msg,
        })
        .expect("bus messages serialize");
        let (channel, store) = (self.store.key(channel), self.store.clone());
        let sharded = store.client().is_some_and(RedisClient::is_cluster);
        actix::spawn(async move {
            let mut publish = redis::cmd(if sharded { "SPUBLISH" } else { "PUBLISH" });
            publish.arg(channel).arg(payload);
            let _ = store.bounded(publish.query_async::<()>(&mut conn)).await;
        });
    }

    /// Hands each message another instance sends on `channel` to `to`, for as long as `to`
    /// lives; does nothing without Redis. Must be called on an Actix thread.
    pub fn listen<T>(&self, channel: &str, to: Recipient<T>)
    where
        T: Message<Result = ()> + DeserializeOwned + Send + 'static,
    {
        let Some(client) = self.store.client().cloned() else {
            return;
        };
        let listener = Listener {
            client,
            channel: self.store.key(channel),
            store: self.store.clone(),
            instance: self.instance,
            to,
            log: self.store.inner.log.clone(),
        };
        actix::spawn(listener.run());
    }
}

struct Listener<T: Message<Result = ()> + Send> {
    client: RedisClient,
    channel: String,
    store: SharedStore,
    instance: Uuid,
    to: Recipient<T>,
    log: Logger,
}

impl<T> Listener<T>
where
    T: Message<Result = ()> + DeserializeOwned + Send + 'static,
{
    async fn run(self) {
        let mut status = self.store.watch_status();
        loop {
            while *status.borrow_and_update() != RedisStatus::Connected {
                if status.changed().await.is_err() {
                    return;
                }
            }
            let ended = match &self.client {
                RedisClient::Single(client) => self.listen_single(client).await,
                RedisClient::Cluster(seeds) => self.listen_cluster(seeds, &mut status).await,
            };
            match ended {
                Ended::SubscribeFailed => tokio::time::sleep(Duration::from_secs(1)).await,
                Ended::Lost => self
                    .store
                    .mark_down("subscription to the other instances lost"),
                Ended::StoreLeftRedis => {}
                Ended::RecipientGone => return,
            }
        }
    }

    /// Subscribes on a pub/sub connection of its own to one server, until it is lost.
    async fn listen_single(&self, client: &redis::Client) -> Ended {
        let subscribe = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&self.channel).await?;
            Ok(pubsub)
        };
        let Ok(pubsub) = self.store.bounded_for(CONNECT_TIMEOUT, subscribe).await else {
            return Ended::SubscribeFailed;
        };
        debug!(self.log, "listening to the other instances"; "channel" => &self.channel);
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let Ok(payload) = msg.get_payload::<Vec<u8>>() else {
                continue;
            };
            if !self.deliver(&payload) {
                return Ended::RecipientGone;
            }
        }
        Ended::Lost
    }

    /// Subscribes (sharded) on a cluster connection of its own, until a node of it drops or
    /// the store leaves Redis.
    async fn listen_cluster(
        &self,
        seeds: &ClusterSeeds,
        status: &mut tokio::sync::watch::Receiver<RedisStatus>,
    ) -> Ended {
        let (tx, mut pushes) = tokio::sync::mpsc::unbounded_channel();
        let subscribe = async {
            let mut conn = seeds.connect_with_pushes(tx).await?;
            conn.ssubscribe(&self.channel).await?;
            Ok(conn)
        };
        let Ok(conn) = self.store.bounded_for(CONNECT_TIMEOUT, subscribe).await else {
            return Ended::SubscribeFailed;
        };
        debug!(self.log, "listening to the other instances (sharded)"; "channel" => &self.channel);
        loop {
            tokio::select! {
                push = pushes.recv() => {
                    let Some(push) = push else { return Ended::Lost };
                    match push.kind {
                        redis::PushKind::SMessage | redis::PushKind::Message => {
                            let payload = push.data.get(1).and_then(|v| {
                                redis::from_redis_value_ref::<Vec<u8>>(v).ok()
                            });
                            if let Some(payload) = payload {
                                if !self.deliver(&payload) {
                                    return Ended::RecipientGone;
                                }
                            }
                        }
                        // Some node's connection dropped (the client reconnects it and
                        // renews the subscription). Only the master serving this channel
                        // matters: if it does not answer, messages are being lost.
                        redis::PushKind::Disconnection
                            if !self.owner_answers(&conn).await =>
                        {
                            return Ended::StoreLeftRedis;
                        }
                        _ => {}
                    }
                }
                changed = status.changed() => {
                    if changed.is_err() {
                        return Ended::RecipientGone;
                    }
                    if *status.borrow() != RedisStatus::Connected {
                        return Ended::StoreLeftRedis;
                    }
                }
            }
        }
    }

    /// Whether the master serving this channel answers (a failure marks Redis down, through
    /// the store's timeout policy).
    async fn owner_answers(&self, conn: &ClusterConnection) -> bool {
        self.store
            .bounded(ping_owner(conn, &self.channel))
            .await
            .is_ok()
    }

    /// Hands a message from another instance to the recipient; false once it is gone.
    fn deliver(&self, payload: &[u8]) -> bool {
        match serde_json::from_slice::<Envelope<T>>(payload) {
            Ok(env) if env.from != self.instance => {
                if !self.to.connected() {
                    return false;
                }
                self.to.do_send(env.msg);
                true
            }
            _ => true,
        }
    }
}

/// Pings the master serving `channel`'s slot.
async fn ping_owner(conn: &ClusterConnection, channel: &str) -> redis::RedisResult<()> {
    let owner = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
        channel,
        SlotAddr::Master,
    )));
    let mut conn = conn.clone();
    conn.route_command(redis::cmd("PING"), owner)
        .await
        .map(drop)
}

/// Why a subscription ended.
enum Ended {
    /// Redis did not take the subscription; retried shortly.
    SubscribeFailed,
    /// The subscription was lost: Redis is marked down and the probe takes over.
    Lost,
    /// The store switched to the fallback; the listener waits for Redis.
    StoreLeftRedis,
    /// Nobody listens any more (the recipient stopped, or the store is gone).
    RecipientGone,
}
