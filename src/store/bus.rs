//! The instance bus: messages between the instances that share one Redis, over Redis pub/sub.
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
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use slog::{debug, Logger};
use uuid::Uuid;

use super::{RedisStatus, SharedStore, CONNECT_TIMEOUT};

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
        actix::spawn(async move {
            let mut publish = redis::cmd("PUBLISH");
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
    client: redis::Client,
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
            let subscribe = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&self.channel).await?;
                Ok(pubsub)
            };
            let Ok(pubsub) = self.store.bounded_for(CONNECT_TIMEOUT, subscribe).await else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            debug!(self.log, "listening to the other instances"; "channel" => &self.channel);
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                let Ok(payload) = msg.get_payload::<Vec<u8>>() else {
                    continue;
                };
                match serde_json::from_slice::<Envelope<T>>(&payload) {
                    Ok(env) if env.from != self.instance => {
                        if !self.to.connected() {
                            return;
                        }
                        self.to.do_send(env.msg);
                    }
                    _ => {}
                }
            }
            self.store
                .mark_down("subscription to the other instances lost");
        }
    }
}
