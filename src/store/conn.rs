//! "A Redis connection", whether Redis is one server or a Redis Cluster.
//!
//! A single server is reached through a [`ConnectionManager`]; a cluster through the redis
//! crate's own cluster client ([`ClusterConnection`]), which learns the slot map from the seed
//! nodes, sends each command to the master owning its key's slot, follows `MOVED`/`ASK`
//! redirections and refreshes the map after a failover. Both implement
//! [`redis::aio::ConnectionLike`], so every command, pipeline and script of the server runs on
//! either through [`RedisConnection`] without knowing which it is.
//!
//! What a cluster asks of the callers: every key one script (or one pipeline) touches must
//! share a hash slot. The limiter's keys carry a hash tag for that (`{ip:…}`, `{user:…}`,
//! `{account:…}`); everything else is one key per command. The key prefix must therefore hold
//! no `{` or `}` (checked at start).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::policy::{CONNECT_TIMEOUT, REDIS_TIMEOUT, RESPONSE_TIMEOUT};

/// Where Redis is: one server, or the seed nodes of a cluster. (One per store, cloned only
/// when a connection is opened: the variants' sizes do not matter.)
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
pub enum RedisClient {
    Single(redis::Client),
    Cluster(ClusterSeeds),
}

/// What it takes to open cluster connections (the bus opens its own, with a push channel).
#[derive(Clone)]
pub struct ClusterSeeds {
    nodes: Vec<String>,
    root_cert: Option<Vec<u8>>,
    client: ClusterClient,
}

/// One connection to Redis, single or cluster. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub enum RedisConnection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisClient {
    /// The client of `url` (one server), or of the comma-separated seed URLs when `cluster`.
    /// `root_cert` (PEM) is the CA a `rediss://` server must chain to, else the system's.
    pub(super) fn open(
        url: &str,
        cluster: bool,
        root_cert: Option<Vec<u8>>,
    ) -> anyhow::Result<Self> {
        if !cluster {
            if url.contains(',') {
                anyhow::bail!(
                    "lists several servers; set RAMPART_REDIS_CLUSTER=true for a Redis Cluster"
                );
            }
            let Some(root_cert) = root_cert else {
                return Ok(RedisClient::Single(redis::Client::open(url)?));
            };
            let tls = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            };
            return Ok(RedisClient::Single(redis::Client::build_with_tls(
                url, tls,
            )?));
        }
        let nodes: Vec<String> = url
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        if nodes.is_empty() {
            anyhow::bail!("lists no seed node");
        }
        let client = cluster_builder(&nodes, root_cert.as_deref()).build()?;
        Ok(RedisClient::Cluster(ClusterSeeds {
            nodes,
            root_cert,
            client,
        }))
    }

    /// Opens a connection (a single server's reconnects by itself; a cluster's reconnects to
    /// each node and follows the slot map).
    pub(super) async fn connect(&self) -> redis::RedisResult<RedisConnection> {
        match self {
            RedisClient::Single(client) => Ok(RedisConnection::Single(
                ConnectionManager::new_with_config(
                    client.clone(),
                    ConnectionManagerConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT)),
                )
                .await?,
            )),
            RedisClient::Cluster(seeds) => Ok(RedisConnection::Cluster(
                seeds.client.get_async_connection().await?,
            )),
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisClient::Cluster(_))
    }
}

impl RedisConnection {
    /// Whether Redis answers: the server, or every master of the cluster (a replica that is
    /// down does not keep the instance off a cluster whose every slot is served).
    pub(super) async fn ping(&mut self) -> redis::RedisResult<()> {
        match self {
            RedisConnection::Single(c) => redis::cmd("PING").query_async(c).await,
            RedisConnection::Cluster(c) => {
                let masters = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::AllSucceeded),
                ));
                c.route_command(redis::cmd("PING"), masters).await.map(drop)
            }
        }
    }
}

impl ClusterSeeds {
    /// A cluster connection speaking RESP3 whose push messages (sharded pub/sub) go to `tx`.
    pub(super) async fn connect_with_pushes(
        &self,
        tx: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> redis::RedisResult<ClusterConnection> {
        cluster_builder(&self.nodes, self.root_cert.as_deref())
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(tx)
            .build()?
            .get_async_connection()
            .await
    }
}

/// The cluster client's settings: its own retries stay within the store's timeout policy (a
/// command that cannot be answered in time switches the instance to the fallback, as for a
/// single server), so it retries little and gives up on a silent node quickly.
fn cluster_builder(nodes: &[String], root_cert: Option<&[u8]>) -> ClusterClientBuilder {
    let mut builder = ClusterClientBuilder::new(nodes.to_vec())
        .retries(2)
        .min_retry_wait(10)
        .max_retry_wait(100)
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(REDIS_TIMEOUT + Duration::from_millis(250));
    if let Some(root_cert) = root_cert {
        builder = builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert.to_vec()),
        });
    }
    builder
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(c) => c.req_packed_command(cmd),
            RedisConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(c) => c.req_packed_commands(cmd, offset, count),
            RedisConnection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(c) => c.get_db(),
            RedisConnection::Cluster(c) => c.get_db(),
        }
    }
}
