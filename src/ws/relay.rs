//! The link between instances: a Redis pub/sub subscription that hands the other instances'
//! envelopes (events, ended sessions, bans and their lifts) to this instance's hub. It follows
//! the store's switch: it subscribes while Redis is the active backend, and a lost subscription
//! switches the instance to the fallback until the probe finds Redis again.

use std::time::Duration;

use actix::Addr;
use futures_util::StreamExt;
use slog::{debug, Logger};
use uuid::Uuid;

use super::hub::{Envelope, Hub};
use crate::store::{RedisStatus, SharedStore, REDIS_TIMEOUT};

/// Receives the other instances' envelopes while Redis is up; resubscribes after an outage.
pub(super) struct Listener {
    pub client: redis::Client,
    pub channel: String,
    pub store: SharedStore,
    pub hub: Addr<Hub>,
    pub instance: Uuid,
    pub log: Logger,
}

impl Listener {
    pub async fn run(self) {
        let mut status = self.store.watch_status();
        loop {
            while *status.borrow_and_update() != RedisStatus::Connected {
                if status.changed().await.is_err() {
                    return;
                }
            }
            let subscribed = tokio::time::timeout(REDIS_TIMEOUT * 4, async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&self.channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            })
            .await;
            let Ok(Ok(pubsub)) = subscribed else {
                self.store.mark_down("cannot subscribe to events");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            debug!(self.log, "listening for events of other instances"; "channel" => &self.channel);
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                let Ok(payload) = msg.get_payload::<Vec<u8>>() else {
                    continue;
                };
                match serde_json::from_slice::<Envelope>(&payload) {
                    Ok(env) if env.from() != self.instance => self.hub.do_send(env),
                    _ => {}
                }
            }
            self.store.mark_down("event subscription lost");
        }
    }
}
