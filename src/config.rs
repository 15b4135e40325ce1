//! One typed configuration, read once from the environment at start-up.
//!
//! Every variable is listed in the README's configuration table. A bad value is a start-up
//! error that names the variable. The secrets may be given as files instead ([`files`]). Nothing here is global: `main` builds a [`Config`] and passes
//! it down, so tests can run several servers with different settings in one process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

mod files;
pub mod tls;

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./.rampart";
pub const DEFAULT_AUDIT_LOG: &str = "./security_audit.log";
pub const DEFAULT_REDIS_PREFIX: &str = "rampart";
pub const DEFAULT_DB_POOL_SIZE: usize = 16;
/// actix-web's own default: a worker stops accepting beyond this many open connections.
pub const DEFAULT_WORKER_MAX_CONNECTIONS: usize = 25_000;
/// Connections waiting in the kernel to be accepted (capped by `net.core.somaxconn`).
pub const DEFAULT_LISTEN_BACKLOG: u32 = 2048;
pub const DEFAULT_SESSION_TTL_SECS: u64 = 43_200;
/// Five minutes to type the second factor after the password.
pub const DEFAULT_MFA_CHALLENGE_SECS: u64 = 300;
/// Request bodies above this size are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A configuration error: the variable it concerns and why its value was refused.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

/// Numeric limits of the contract (README "Limits"). Windows and lifetimes are in seconds.
#[derive(Debug, Clone)]
pub struct Limits {
    pub ws_connect_limit: u32,
    pub ws_connect_window_secs: u64,
    pub ws_max_connections_per_user: u32,
    pub ws_lease_secs: u64,
    pub ws_message_limit: u32,
    pub ws_message_window_secs: u64,
    pub ws_max_message_bytes: usize,
    pub ban_after_violations: u32,
    pub violation_window_secs: u64,
    pub ban_secs: u64,
    /// Ban lengths for repeat offenders: the second ban of an IP lasts the first of these, the
    /// third the next, and so on (the last one repeats).
    pub ban_escalation_secs: Vec<u64>,
    /// How long an IP's earlier bans count towards escalation.
    pub ban_memory_secs: u64,
    pub login_account_limit: u32,
    pub login_ip_limit: u32,
    pub login_window_secs: u64,
    pub ws_ticket_secs: u64,
    /// Lifetime of the second step of a login (`RAMPART_MFA_CHALLENGE_SECS`).
    pub mfa_challenge_secs: u64,
    pub session_ttl_secs: u64,
    pub ws_heartbeat_secs: u64,
    pub ws_client_timeout_secs: u64,
    pub alert_brute_force_threshold: u32,
    pub alert_cross_tenant_threshold: u32,
    pub alert_window_secs: u64,
}

impl Limits {
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_secs)
    }

    pub fn mfa_challenge_ttl(&self) -> Duration {
        Duration::from_secs(self.mfa_challenge_secs)
    }
}

/// The whole server configuration. Its `Debug` hides the database and Redis URLs (they may
/// hold passwords) and the master key.
#[derive(Clone)]
pub struct Config {
    pub bind: SocketAddr,
    /// `RAMPART_METRICS_BIND`: when set, `/metrics` is served only on this address (an
    /// internal listener) and the main one answers 404 for it.
    pub metrics_bind: Option<SocketAddr>,
    /// `None`: embedded PostgreSQL under `data_dir/pg`.
    pub database_url: Option<String>,
    /// `None`: in-process fallback for everything Redis does.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so several deployments (or test runs) can share one Redis.
    pub redis_prefix: String,
    /// CA certificates (PEM) a `rediss://` server must chain to, instead of the system's.
    pub redis_ca_file: Option<PathBuf>,
    /// `RAMPART_REDIS_CLUSTER`: `redis_url` lists the seed nodes of a Redis Cluster.
    pub redis_cluster: bool,
    /// Certificate chain and private key (PEM) of the HTTPS listener; both or neither.
    /// Reloaded on SIGHUP.
    pub tls: Option<ListenerTls>,
    pub data_dir: PathBuf,
    pub audit_log: PathBuf,
    /// Base64 of 32 bytes, when given; otherwise generated into `data_dir/master.key`.
    pub master_key: Option<String>,
    /// Extra origins allowed besides the server's own (`scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    pub trust_forwarded: bool,
    pub log_level: slog::Level,
    pub db_pool_size: usize,
    /// `RAMPART_WORKER_MAX_CONNECTIONS`: open connections (HTTP and WebSocket) per HTTP worker
    /// thread beyond which that worker stops accepting; the instance holds up to this times the
    /// number of cores.
    pub worker_max_connections: usize,
    /// `RAMPART_LISTEN_BACKLOG`: the listening socket's accept queue.
    pub listen_backlog: u32,
    /// Sign the audit chain head after this many events…
    pub audit_checkpoint_events: u64,
    /// …or after this many seconds with new events.
    pub audit_checkpoint_secs: u64,
    pub limits: Limits,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "[redacted]");
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("metrics_bind", &self.metrics_bind)
            .field("database_url", &hidden(&self.database_url))
            .field("redis_url", &hidden(&self.redis_url))
            .field("redis_prefix", &self.redis_prefix)
            .field("redis_ca_file", &self.redis_ca_file)
            .field("redis_cluster", &self.redis_cluster)
            .field("tls", &self.tls)
            .field("data_dir", &self.data_dir)
            .field("audit_log", &self.audit_log)
            .field("master_key", &hidden(&self.master_key))
            .field("allowed_origins", &self.allowed_origins)
            .field("trust_forwarded", &self.trust_forwarded)
            .field("log_level", &self.log_level)
            .field("db_pool_size", &self.db_pool_size)
            .field("worker_max_connections", &self.worker_max_connections)
            .field("listen_backlog", &self.listen_backlog)
            .field("audit_checkpoint_events", &self.audit_checkpoint_events)
            .field("audit_checkpoint_secs", &self.audit_checkpoint_secs)
            .field("limits", &self.limits)
            .finish()
    }
}

/// The files of the HTTPS listener (`RAMPART_TLS_CERT_FILE`, `RAMPART_TLS_KEY_FILE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Reads variables from a map, so tests can build a configuration without touching the process
/// environment.
struct Env(HashMap<String, String>);

impl Env {
    fn raw(&self, var: &'static str) -> Option<&str> {
        self.0.get(var).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    fn string(&self, var: &'static str, default: &str) -> String {
        self.raw(var).unwrap_or(default).to_string()
    }

    fn parse<T: FromStr>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.raw(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e: T::Err| ConfigError {
                var,
                reason: format!("cannot parse {v:?}: {e}"),
            }),
        }
    }

    /// A value that is absent unless given.
    fn optional<T: FromStr>(&self, var: &'static str) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.raw(var)
            .map(|v| {
                v.parse().map_err(|e: T::Err| ConfigError {
                    var,
                    reason: format!("cannot parse {v:?}: {e}"),
                })
            })
            .transpose()
    }

    /// A positive number: zero would make a limit refuse everything or a window meaningless.
    fn positive<T>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Default + Copy,
        T::Err: std::fmt::Display,
    {
        let v = self.parse(var, default)?;
        if v <= T::default() {
            return Err(ConfigError {
                var,
                reason: "must be greater than zero".into(),
            });
        }
        Ok(v)
    }

    /// A comma-separated list of positive numbers of seconds.
    fn seconds_list(&self, var: &'static str, default: &[u64]) -> Result<Vec<u64>, ConfigError> {
        let Some(raw) = self.raw(var) else {
            return Ok(default.to_vec());
        };
        raw.split(',')
            .map(|part| match part.trim().parse::<u64>() {
                Ok(v) if v > 0 => Ok(v),
                _ => Err(ConfigError {
                    var,
                    reason: format!("expected positive seconds separated by commas, got {raw:?}"),
                }),
            })
            .collect()
    }

    fn flag(&self, var: &'static str) -> Result<bool, ConfigError> {
        match self.raw(var).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false" | "0" | "no" | "off") => Ok(false),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some(other) => Err(ConfigError {
                var,
                reason: format!("expected true or false, got {other:?}"),
            }),
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_map(std::env::vars().collect())
    }

    /// Reads the given variables (the rest take their defaults), and the files named by the
    /// `*_FILE` variables.
    pub fn from_map(vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        let (vars, from_file) = files::resolve(vars)?;
        let env = Env(vars);
        let log_level = match env.raw("RAMPART_LOG") {
            None => slog::Level::Info,
            Some(v) => slog::Level::from_str(v).map_err(|()| ConfigError {
                var: "RAMPART_LOG",
                reason: format!(
                    "unknown level {v:?} (use critical, error, warning, info, debug, trace)"
                ),
            })?,
        };
        let master_key = env.raw("RAMPART_MASTER_KEY").map(str::to_string);
        if let Some(key) = &master_key {
            crate::secret::decode_master_key(key).map_err(|reason| ConfigError {
                var: files::source_of("RAMPART_MASTER_KEY", &from_file),
                reason,
            })?;
        }
        let allowed_origins = env
            .raw("RAMPART_ALLOWED_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_string())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let redis_url = env.raw("REDIS_URL").map(str::to_string);
        let redis_ca_file = redis_ca_file(&env, redis_url.as_deref())?;
        let redis_prefix = env.string("RAMPART_REDIS_PREFIX", DEFAULT_REDIS_PREFIX);
        let redis_cluster = redis_cluster(&env, redis_url.as_deref(), &redis_prefix)?;
        let tls = listener_tls(&env)?;
        Ok(Config {
            bind: env.parse("RAMPART_BIND", DEFAULT_BIND.parse().expect("valid default"))?,
            metrics_bind: env.optional("RAMPART_METRICS_BIND")?,
            database_url: env.raw("DATABASE_URL").map(str::to_string),
            redis_url,
            redis_prefix,
            redis_ca_file,
            redis_cluster,
            tls,
            data_dir: env.string("RAMPART_DATA_DIR", DEFAULT_DATA_DIR).into(),
            audit_log: env.string("RAMPART_AUDIT_LOG", DEFAULT_AUDIT_LOG).into(),
            master_key,
            allowed_origins,
            trust_forwarded: env.flag("RAMPART_TRUST_FORWARDED")?,
            log_level,
            db_pool_size: env.positive("RAMPART_DB_POOL_SIZE", DEFAULT_DB_POOL_SIZE)?,
            worker_max_connections: env.positive(
                "RAMPART_WORKER_MAX_CONNECTIONS",
                DEFAULT_WORKER_MAX_CONNECTIONS,
            )?,
            listen_backlog: env.positive("RAMPART_LISTEN_BACKLOG", DEFAULT_LISTEN_BACKLOG)?,
            audit_checkpoint_events: env.positive("RAMPART_AUDIT_CHECKPOINT_EVENTS", 1000)?,
            audit_checkpoint_secs: env.positive("RAMPART_AUDIT_CHECKPOINT_SECS", 5)?,
            limits: Limits::from_env(&env)?,
        })
    }
}

/// `RAMPART_REDIS_CA_FILE`: a readable CA file, and only with a `rediss://` URL (a CA
/// beside a plain URL would suggest a protection that is not there).
fn redis_ca_file(env: &Env, redis_url: Option<&str>) -> Result<Option<PathBuf>, ConfigError> {
    const VAR: &str = "RAMPART_REDIS_CA_FILE";
    let Some(path) = env.raw(VAR).map(PathBuf::from) else {
        return Ok(None);
    };
    if !redis_url.is_some_and(|u| u.starts_with("rediss://")) {
        return Err(ConfigError {
            var: VAR,
            reason: "set, but REDIS_URL is not a rediss:// (TLS) URL".into(),
        });
    }
    tls::roots(&path).map_err(|reason| ConfigError { var: VAR, reason })?;
    Ok(Some(path))
}

/// `RAMPART_REDIS_CLUSTER`: only with a `REDIS_URL` (its comma-separated seed nodes), and
/// with a key prefix free of `{` and `}`, which would move the hash tags that keep the keys of
/// one script in one slot. Several URLs without it are refused: they would name a cluster.
fn redis_cluster(env: &Env, redis_url: Option<&str>, prefix: &str) -> Result<bool, ConfigError> {
    const VAR: &str = "RAMPART_REDIS_CLUSTER";
    let cluster = env.flag(VAR)?;
    let err = |var, reason: &str| ConfigError {
        var,
        reason: reason.into(),
    };
    match redis_url {
        None if cluster => Err(err(VAR, "set, but REDIS_URL (the seed nodes) is not")),
        Some(url) if !cluster && url.contains(',') => Err(err(
            "REDIS_URL",
            "lists several servers; set RAMPART_REDIS_CLUSTER=true for a Redis Cluster",
        )),
        _ if cluster && prefix.contains(['{', '}']) => Err(err(
            "RAMPART_REDIS_PREFIX",
            "must not contain { or } on a Redis Cluster (they would move the hash tags)",
        )),
        _ => Ok(cluster),
    }
}

/// `RAMPART_TLS_CERT_FILE` and `RAMPART_TLS_KEY_FILE`: both or neither, and a key that
/// belongs to the certificate.
fn listener_tls(env: &Env) -> Result<Option<ListenerTls>, ConfigError> {
    const CERT: &str = "RAMPART_TLS_CERT_FILE";
    const KEY: &str = "RAMPART_TLS_KEY_FILE";
    let (cert_file, key_file) = match (env.raw(CERT), env.raw(KEY)) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (PathBuf::from(c), PathBuf::from(k)),
        (Some(_), None) => {
            return Err(ConfigError {
                var: KEY,
                reason: format!("must be set with {CERT}"),
            })
        }
        (None, Some(_)) => {
            return Err(ConfigError {
                var: CERT,
                reason: format!("must be set with {KEY}"),
            })
        }
    };
    tls::certificates(&cert_file).map_err(|reason| ConfigError { var: CERT, reason })?;
    tls::private_key(&key_file).map_err(|reason| ConfigError { var: KEY, reason })?;
    tls::certified_key(&cert_file, &key_file).map_err(|reason| ConfigError { var: KEY, reason })?;
    Ok(Some(ListenerTls {
        cert_file,
        key_file,
    }))
}

impl Limits {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let limits = Limits {
            ws_connect_limit: env.positive("RAMPART_WS_CONNECT_LIMIT", 10)?,
            ws_connect_window_secs: env.positive("RAMPART_WS_CONNECT_WINDOW_SECS", 60)?,
            ws_max_connections_per_user: env.positive("RAMPART_WS_MAX_CONNECTIONS_PER_USER", 5)?,
            ws_lease_secs: env.positive("RAMPART_WS_LEASE_SECS", 60)?,
            ws_message_limit: env.positive("RAMPART_WS_MESSAGE_LIMIT", 60)?,
            ws_message_window_secs: env.positive("RAMPART_WS_MESSAGE_WINDOW_SECS", 60)?,
            ws_max_message_bytes: env.positive("RAMPART_WS_MAX_MESSAGE_BYTES", 10_240)?,
            ban_after_violations: env.positive("RAMPART_BAN_AFTER_VIOLATIONS", 3)?,
            violation_window_secs: env.positive("RAMPART_VIOLATION_WINDOW_SECS", 300)?,
            ban_secs: env.positive("RAMPART_BAN_SECS", 900)?,
            ban_escalation_secs: env
                .seconds_list("RAMPART_BAN_ESCALATION_SECS", &[3600, 86_400])?,
            ban_memory_secs: env.positive("RAMPART_BAN_MEMORY_SECS", 604_800)?,
            login_account_limit: env.positive("RAMPART_LOGIN_ACCOUNT_LIMIT", 5)?,
            login_ip_limit: env.positive("RAMPART_LOGIN_IP_LIMIT", 20)?,
            login_window_secs: env.positive("RAMPART_LOGIN_WINDOW_SECS", 900)?,
            ws_ticket_secs: env.positive("RAMPART_WS_TICKET_SECS", 30)?,
            mfa_challenge_secs: env
                .positive("RAMPART_MFA_CHALLENGE_SECS", DEFAULT_MFA_CHALLENGE_SECS)?,
            session_ttl_secs: env.positive("RAMPART_SESSION_TTL_SECS", DEFAULT_SESSION_TTL_SECS)?,
            ws_heartbeat_secs: env.positive("RAMPART_WS_HEARTBEAT_SECS", 15)?,
            ws_client_timeout_secs: env.positive("RAMPART_WS_CLIENT_TIMEOUT_SECS", 45)?,
            alert_brute_force_threshold: env.positive("RAMPART_ALERT_BRUTE_FORCE_THRESHOLD", 10)?,
            alert_cross_tenant_threshold: env
                .positive("RAMPART_ALERT_CROSS_TENANT_THRESHOLD", 5)?,
            alert_window_secs: env.positive("RAMPART_ALERT_WINDOW_SECS", 300)?,
        };
        // The heartbeat is what wakes a quiet connection; a connection not woken within the
        // client timeout is taken for stalled and dropped (ws::stall).
        if limits.ws_heartbeat_secs >= limits.ws_client_timeout_secs {
            return Err(ConfigError {
                var: "RAMPART_WS_HEARTBEAT_SECS",
                reason: format!(
                    "must be less than RAMPART_WS_CLIENT_TIMEOUT_SECS ({}), got {}",
                    limits.ws_client_timeout_secs, limits.ws_heartbeat_secs
                ),
            });
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_redis_cluster_is_named_by_its_flag_and_seed_nodes() {
        let seeds = "redis://10.0.0.1:7000/,redis://10.0.0.2:7000/";
        let c = Config::from_map(vars(&[
            ("REDIS_URL", seeds),
            ("RAMPART_REDIS_CLUSTER", "true"),
        ]))
        .unwrap();
        assert!(c.redis_cluster);
        let single = Config::from_map(vars(&[("REDIS_URL", "redis://cache/")])).unwrap();
        assert!(!single.redis_cluster);
        let refused = |pairs: &[(&str, &str)]| Config::from_map(vars(pairs)).unwrap_err().var;
        assert_eq!(refused(&[("REDIS_URL", seeds)]), "REDIS_URL");
        assert_eq!(
            refused(&[("RAMPART_REDIS_CLUSTER", "true")]),
            "RAMPART_REDIS_CLUSTER"
        );
        assert_eq!(
            refused(&[
                ("REDIS_URL", seeds),
                ("RAMPART_REDIS_CLUSTER", "true"),
                ("RAMPART_REDIS_PREFIX", "app{1}"),
            ]),
            "RAMPART_REDIS_PREFIX"
        );
    }

    #[test]
    fn debug_output_hides_urls_and_the_master_key() {
        let key = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
        let c = Config::from_map(vars(&[
            ("DATABASE_URL", "postgres://app:db-secret@db/rampart"),
            ("REDIS_URL", "redis://:redis-secret@cache"),
            ("RAMPART_MASTER_KEY", key),
        ]))
        .unwrap();
        let shown = format!("{c:?}");
        for secret in ["db-secret", "redis-secret", key] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("[redacted]") && shown.contains("bind"),
            "{shown}"
        );
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::from_map(HashMap::new()).unwrap();
        assert_eq!(c.bind.to_string(), DEFAULT_BIND);
        assert_eq!(c.metrics_bind, None);
        assert!(c.database_url.is_none() && c.redis_url.is_none());
        assert_eq!(c.limits.ws_max_message_bytes, 10_240);
        assert_eq!(c.limits.session_ttl_secs, 43_200);
        assert_eq!(c.limits.login_account_limit, 5);
        assert_eq!(c.limits.mfa_challenge_secs, 300);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = Config::from_map(vars(&[("RAMPART_WS_MESSAGE_LIMIT", "lots")])).unwrap_err();
        assert_eq!(err.var, "RAMPART_WS_MESSAGE_LIMIT");
        let err = Config::from_map(vars(&[("RAMPART_BAN_SECS", "0")])).unwrap_err();
        assert_eq!(err.var, "RAMPART_BAN_SECS");
        let err = Config::from_map(vars(&[("RAMPART_BAN_ESCALATION_SECS", "60,x")])).unwrap_err();
        assert_eq!(err.var, "RAMPART_BAN_ESCALATION_SECS");
        let err = Config::from_map(vars(&[("RAMPART_TRUST_FORWARDED", "maybe")])).unwrap_err();
        assert_eq!(err.var, "RAMPART_TRUST_FORWARDED");
        let err = Config::from_map(vars(&[("RAMPART_MASTER_KEY", "c2hvcnQ=")])).unwrap_err();
        assert_eq!(err.var, "RAMPART_MASTER_KEY");
        let err = Config::from_map(vars(&[("RAMPART_BIND", "nowhere")])).unwrap_err();
        assert_eq!(err.var, "RAMPART_BIND");
        let err = Config::from_map(vars(&[("RAMPART_METRICS_BIND", "9100")])).unwrap_err();
        assert_eq!(err.var, "RAMPART_METRICS_BIND");
        let c = Config::from_map(vars(&[("RAMPART_METRICS_BIND", "127.0.0.1:9100")])).unwrap();
        assert_eq!(c.metrics_bind, Some("127.0.0.1:9100".parse().unwrap()));
    }

    #[test]
    fn connection_capacity_defaults_to_actix_and_is_raised_by_its_variables() {
        let c = Config::from_map(vars(&[])).unwrap();
        assert_eq!(c.worker_max_connections, 25_000);
        assert_eq!(c.listen_backlog, 2048);
        let c = Config::from_map(vars(&[
            ("RAMPART_WORKER_MAX_CONNECTIONS", "200000"),
            ("RAMPART_LISTEN_BACKLOG", "4096"),
        ]))
        .unwrap();
        assert_eq!(
            (c.worker_max_connections, c.listen_backlog),
            (200_000, 4096)
        );
        for var in ["RAMPART_WORKER_MAX_CONNECTIONS", "RAMPART_LISTEN_BACKLOG"] {
            assert_eq!(Config::from_map(vars(&[(var, "0")])).unwrap_err().var, var);
        }
    }

    #[test]
    fn the_heartbeat_must_be_shorter_than_the_client_timeout() {
        let beat = |secs: &str| {
            Config::from_map(vars(&[
                ("RAMPART_WS_HEARTBEAT_SECS", secs),
                ("RAMPART_WS_CLIENT_TIMEOUT_SECS", "10"),
            ]))
        };
        assert_eq!(beat("9").unwrap().limits.ws_heartbeat_secs, 9);
        for bad in ["10", "11"] {
            assert_eq!(
                beat(bad).unwrap_err().var,
                "RAMPART_WS_HEARTBEAT_SECS",
                "{bad}"
            );
        }
        let err = Config::from_map(vars(&[("RAMPART_WS_CLIENT_TIMEOUT_SECS", "15")])).unwrap_err();
        assert_eq!(err.var, "RAMPART_WS_HEARTBEAT_SECS");
    }

    #[test]
    fn the_listener_needs_a_certificate_and_its_own_key() {
        let dir = std::env::temp_dir().join(format!("rampart-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let one = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let two = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = write("cert.pem", one.cert.pem());
        let key = write("key.pem", one.signing_key.serialize_pem());
        let other_key = write("other.pem", two.signing_key.serialize_pem());
        let listener = |pairs: &[(&str, &str)]| Config::from_map(vars(pairs));
        let c = listener(&[
            ("RAMPART_TLS_CERT_FILE", &cert),
            ("RAMPART_TLS_KEY_FILE", &key),
        ])
        .unwrap();
        assert_eq!(c.tls.unwrap().cert_file, std::path::PathBuf::from(&cert));
        let err = listener(&[
            ("RAMPART_TLS_CERT_FILE", &cert),
            ("RAMPART_TLS_KEY_FILE", &other_key),
        ])
        .unwrap_err();
        assert_eq!(err.var, "RAMPART_TLS_KEY_FILE");
        assert!(err.to_string().contains("does not belong"), "{err}");
        let err = listener(&[("RAMPART_TLS_KEY_FILE", &key)]).unwrap_err();
        assert_eq!(err.var, "RAMPART_TLS_CERT_FILE");
        let err = listener(&[
            ("RAMPART_TLS_CERT_FILE", &key),
            ("RAMPART_TLS_KEY_FILE", &key),
        ])
        .unwrap_err();
        assert_eq!(err.var, "RAMPART_TLS_CERT_FILE");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn origins_are_split_and_trimmed() {
        let c = Config::from_map(vars(&[(
            "RAMPART_ALLOWED_ORIGINS",
            "https://a.example/, https://b.example",
        )]))
        .unwrap();
        assert_eq!(
            c.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
    }
}
