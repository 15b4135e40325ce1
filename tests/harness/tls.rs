//! TLS fixtures: a private certificate authority with a server certificate for `localhost`
//! and `127.0.0.1` (plus an unrelated second CA, to be refused), a PostgreSQL cluster
//! listening on TCP with `ssl=on` (or off), and a `redis-server` that speaks only TLS.
//!
//! These servers are started per test (a few hundred milliseconds each) and die with their
//! value or the test process, like the shared ones in `processes.rs`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rampart::embedded_pg::{self, SupervisedChild};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A directory of its own under the system temp dir, removed when dropped; the `postgres`
/// user may enter it.
pub struct TlsDir(pub PathBuf);

impl TlsDir {
    pub fn new() -> TlsDir {
        let dir = std::env::temp_dir().join(format!("rampart-tls-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).expect("tls dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("tls dir mode");
        TlsDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TlsDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A test certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("ca key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("ca certificate"),
        }
    }

    /// The CA certificate in PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate to `path`.
    pub fn write(&self, path: &Path) -> PathBuf {
        fs::write(path, self.pem()).expect("write ca");
        path.to_path_buf()
    }

    /// A server certificate for `names` (DNS names or IP addresses): PEM certificate, PEM key
    /// and the certificate's DER.
    pub fn issue(&self, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "rampart test server");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// A certificate and its key.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Issued {
    /// Writes the certificate and key to `cert` and `key` (the key with mode 0600).
    pub fn write(&self, cert: &Path, key: &Path) {
        fs::write(cert, &self.cert_pem).expect("write cert");
        fs::write(key, &self.key_pem).expect("write key");
        fs::set_permissions(key, fs::Permissions::from_mode(0o600)).expect("key mode");
    }
}

/// The uid and gid to run PostgreSQL as: the `postgres` user when we are root.
fn postgres_user() -> Option<(nix::unistd::Uid, nix::unistd::Gid)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("postgres")
        .expect("look up the postgres user")
        .expect("running as root needs a `postgres` system user");
    Some((user.uid, user.gid))
}

fn chown(path: &Path, user: Option<(nix::unistd::Uid, nix::unistd::Gid)>) {
    if let Some((uid, gid)) = user {
        nix::unistd::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A PostgreSQL cluster on `127.0.0.1:<port>` (TCP, `trust` for local addresses), with TLS
/// on when a certificate is given. Stopped when dropped.
pub struct TlsPostgres {
    pub port: u16,
    _child: SupervisedChild,
    _dir: TlsDir,
}

impl TlsPostgres {
    /// Starts a cluster serving `server` (certificate and key) with `ssl=on`, or without TLS
    /// when `server` is `None`.
    pub fn start(server: Option<&Issued>) -> TlsPostgres {
        let bins = embedded_pg::find_binaries().expect("PostgreSQL binaries");
        let user = postgres_user();
        let dir = TlsDir::new();
        let data = dir.path("data");
        fs::create_dir_all(&data).expect("data dir");
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).expect("data mode");
        chown(&data, user);
        let mut initdb = Command::new(bins.bindir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth-local=trust", "--auth-host=trust"])
            .args(["-E", "UTF8", "--no-sync", "--no-instructions"])
            .env("LC_ALL", "C")
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        as_user(&mut initdb, user);
        let out = initdb.output().expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut settings = vec![
            "listen_addresses=127.0.0.1".to_string(),
            format!("port={port}"),
            // The data directory belongs to the server's user, so it may put its socket there.
            format!("unix_socket_directories={}", data.display()),
            "fsync=off".into(),
            "logging_collector=off".into(),
        ];
        if let Some(server) = server {
            let (cert, key) = (dir.path("server.crt"), dir.path("server.key"));
            server.write(&cert, &key);
            chown(&cert, user);
            chown(&key, user);
            settings.extend([
                "ssl=on".to_string(),
                format!("ssl_cert_file={}", cert.display()),
                format!("ssl_key_file={}", key.display()),
            ]);
        }
        let log = fs::File::create(dir.path("postgres.log")).expect("pg log");
        let mut cmd = Command::new(bins.bindir.join("postgres"));
        cmd.arg("-D").arg(&data);
        for s in &settings {
            cmd.args(["-c", s]);
        }
        cmd.current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        as_user(&mut cmd, user);
        let child = SupervisedChild::spawn(cmd, Signal::SIGQUIT, "postgres").expect("postgres");
        let deadline = Instant::now() + START_TIMEOUT;
        let ready = || {
            fs::read_to_string(data.join("postmaster.pid"))
                .is_ok_and(|pid| pid.lines().any(|l| l.trim() == "ready"))
        };
        while !ready() {
            assert!(
                !child.has_exited() && Instant::now() < deadline,
                "the TLS test PostgreSQL did not start: {}",
                fs::read_to_string(dir.path("postgres.log")).unwrap_or_default()
            );
            child.wait_timeout(Duration::from_millis(25));
        }
        TlsPostgres {
            port,
            _child: child,
            _dir: dir,
        }
    }

    /// A URL for database `db` as the superuser, with `params` (e.g. `sslmode=require`).
    pub fn url(&self, db: &str, params: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}?{params}", self.port)
    }

    /// Creates database `name` (over TCP without TLS verification; the cluster trusts local
    /// connections).
    pub async fn create_database(&self, name: &str) {
        use diesel_async::SimpleAsyncConnection;
        let mut conn = rampart::db::tls::connect(&self.url("postgres", "sslmode=prefer"))
            .await
            .expect("connect to the TLS test cluster");
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
    }
}

fn as_user(cmd: &mut Command, user: Option<(nix::unistd::Uid, nix::unistd::Gid)>) {
    if let Some((uid, gid)) = user {
        cmd.uid(uid.as_raw()).gid(gid.as_raw());
    }
}

/// A `redis-server` that accepts only TLS, on `127.0.0.1:<port>`, serving `server` (clients
/// are not asked for certificates). Stopped when dropped.
pub struct TlsRedis {
    pub port: u16,
    _child: SupervisedChild,
    _dir: TlsDir,
}

impl TlsRedis {
    pub fn start(server: &Issued, ca: &Ca) -> TlsRedis {
        let dir = TlsDir::new();
        let (cert, key) = (dir.path("redis.crt"), dir.path("redis.key"));
        server.write(&cert, &key);
        let ca_file = ca.write(&dir.path("ca.crt"));
        let port = free_port();
        let log = fs::File::create(dir.path("redis.log")).expect("redis log");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .arg("--tls-ca-cert-file")
            .arg(&ca_file)
            .args(["--tls-auth-clients", "no", "--dir"])
            .arg(&dir.0)
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = SupervisedChild::spawn(cmd, Signal::SIGKILL, "redis").expect("redis-server");
        let deadline = Instant::now() + START_TIMEOUT;
        let log_path = dir.path("redis.log");
        while !fs::read_to_string(&log_path).is_ok_and(|l| l.contains("Ready to accept")) {
            assert!(
                !child.has_exited() && Instant::now() < deadline,
                "the TLS test redis-server did not start: {}",
                fs::read_to_string(&log_path).unwrap_or_default()
            );
            child.wait_timeout(Duration::from_millis(25));
        }
        TlsRedis {
            port,
            _child: child,
            _dir: dir,
        }
    }

    /// `rediss://<host>:<port>/`.
    pub fn url(&self, host: &str) -> String {
        format!("rediss://{host}:{}/", self.port)
    }
}
