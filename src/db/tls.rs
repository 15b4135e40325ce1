//! Every PostgreSQL connection is opened here ([`connect`]): the pool's, the migrations', the
//! CLI's and the embedded cluster's set-up, so all of them honour the same TLS settings.
//!
//! The settings are libpq's, read from the connection string itself, so one `DATABASE_URL`
//! means the same to Rampart as to `psql`:
//!
//! - `sslmode`: `disable` (no TLS); `allow` and `prefer` (the default: TLS when the server
//!   offers it, plain otherwise, certificate not checked); `require` (TLS or no connection;
//!   the certificate is not checked unless `sslrootcert` is given, then as `verify-ca`);
//!   `verify-ca` (TLS, chain checked against `sslrootcert`); `verify-full` (that, and the
//!   certificate must name the host connected to).
//! - `sslrootcert`: a PEM file of the CA certificates to trust, or `system` for the operating
//!   system's store. The `verify-*` modes need it.
//!
//! Unix-socket connections never use TLS (PostgreSQL offers none there): `prefer` connects
//! plainly, while the modes that demand TLS refuse such a host.
//!
//! The client settings of one (mode, CA) pair are built once per process and shared, so the
//! CA file is read at the first connection (checked at start-up: see [`TlsSettings::check`]),
//! never on every connection.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use diesel::ConnectionError;
use diesel_async::AsyncPgConnection;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode};

use crate::config::tls as pem;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Where the trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Roots {
    /// None given: the certificate is not checked (`prefer`, `require`).
    Unchecked,
    /// `sslrootcert=system`.
    System,
    /// `sslrootcert=<file>`.
    File(PathBuf),
}

/// The TLS settings of a connection string, and the string without them (what
/// tokio-postgres understands).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub mode: Mode,
    pub roots: Roots,
    rest: String,
}

impl TlsSettings {
    /// Reads `sslmode` and `sslrootcert` from a URL (`postgres://…?sslmode=…`) or a
    /// key/value string (`host=… sslmode=…`). The error never quotes the string (it may hold
    /// a password), only the offending value.
    pub fn parse(conn_str: &str) -> Result<TlsSettings, String> {
        let (mut mode, mut root) = (None, None);
        let rest = if conn_str.starts_with("postgres://") || conn_str.starts_with("postgresql://") {
            let (base, query) = conn_str.split_once('?').unwrap_or((conn_str, ""));
            let mut kept = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let v = percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned();
                match k {
                    "sslmode" => mode = Some(v),
                    "sslrootcert" => root = Some(v),
                    _ => kept.push(pair),
                }
            }
            if kept.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        } else {
            // Values with spaces (quoted) are left to tokio-postgres; ours never have them.
            let mut kept = Vec::new();
            for word in conn_str.split_whitespace() {
                match word.split_once('=') {
                    Some(("sslmode", v)) => mode = Some(v.to_string()),
                    Some(("sslrootcert", v)) => root = Some(v.to_string()),
                    _ => kept.push(word),
                }
            }
            kept.join(" ")
        };
        let mode = match mode.as_deref() {
            None | Some("prefer" | "allow") => Mode::Prefer,
            Some("disable") => Mode::Disable,
            Some("require") => Mode::Require,
            Some("verify-ca") => Mode::VerifyCa,
            Some("verify-full") => Mode::VerifyFull,
            Some(other) => {
                return Err(format!(
                    "unknown sslmode {other:?} (use disable, allow, prefer, require, verify-ca \
                     or verify-full)"
                ))
            }
        };
        let roots = match root.as_deref() {
            None | Some("") => Roots::Unchecked,
            Some("system") => Roots::System,
            Some(path) => Roots::File(path.into()),
        };
        if matches!(mode, Mode::VerifyCa | Mode::VerifyFull) && roots == Roots::Unchecked {
            return Err(format!(
                "sslmode={} needs sslrootcert (a CA file, or `system`)",
                if mode == Mode::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                }
            ));
        }
        Ok(TlsSettings { mode, roots, rest })
    }

    /// Parses `conn_str` and builds its TLS client settings now, so that a bad mode or an
    /// unreadable CA file is a start-up error rather than a failure of every connection.
    pub fn check(conn_str: &str) -> Result<(), String> {
        let settings = TlsSettings::parse(conn_str)?;
        if settings.mode != Mode::Disable {
            client_config(settings.mode, &settings.roots)?;
        }
        Ok(())
    }
}

/// Opens one connection to `conn_str`, with TLS as its `sslmode` says.
pub async fn connect(conn_str: &str) -> diesel::ConnectionResult<AsyncPgConnection> {
    let bad = |e: String| ConnectionError::BadConnection(e);
    let settings = TlsSettings::parse(conn_str).map_err(bad)?;
    let mut config: tokio_postgres::Config = settings
        .rest
        .parse()
        .map_err(|e: tokio_postgres::Error| bad(e.to_string()))?;
    let sockets_only = config
        .get_hosts()
        .iter()
        .all(|h| matches!(h, Host::Unix(_)));
    let mode = match settings.mode {
        Mode::Prefer if sockets_only => Mode::Disable,
        Mode::Disable => Mode::Disable,
        _ if sockets_only => {
            return Err(bad(
                "sslmode demands TLS, which PostgreSQL does not offer on a Unix socket".into(),
            ))
        }
        other => other,
    };
    let failed = |e: tokio_postgres::Error| bad(describe(&e));
    if mode == Mode::Disable {
        config.ssl_mode(SslMode::Disable);
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(failed)?;
        return AsyncPgConnection::try_from_client_and_connection(client, connection).await;
    }
    config.ssl_mode(if mode == Mode::Prefer {
        SslMode::Prefer
    } else {
        SslMode::Require
    });
    let tls = client_config(mode, &settings.roots).map_err(bad)?;
    let connector = tokio_postgres_rustls::MakeRustlsConnect::new((*tls).clone());
    let (client, connection) = config.connect(connector).await.map_err(failed)?;
    AsyncPgConnection::try_from_client_and_connection(client, connection).await
}

/// tokio-postgres's error with its cause (a certificate problem sits in the cause).
fn describe(e: &tokio_postgres::Error) -> String {
    use std::error::Error;
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// The rustls client settings of a mode and CA, built once per process.
fn client_config(mode: Mode, roots: &Roots) -> Result<Arc<ClientConfig>, String> {
    type Built = HashMap<(Mode, Roots), Arc<ClientConfig>>;
    static BUILT: OnceLock<Mutex<Built>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let key = (mode, roots.clone());
    if let Some(config) = built.lock().expect("tls settings").get(&key) {
        return Ok(config.clone());
    }
    let config = Arc::new(build_client_config(mode, roots)?);
    built
        .lock()
        .expect("tls settings")
        .insert(key, config.clone());
    Ok(config)
}

fn build_client_config(mode: Mode, roots: &Roots) -> Result<ClientConfig, String> {
    let provider = pem::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let store = match roots {
        Roots::Unchecked => None,
        Roots::File(path) => Some(pem::roots(path).map_err(|e| format!("sslrootcert: {e}"))?),
        Roots::System => {
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if store.is_empty() {
                return Err("sslrootcert=system: no CA certificates in the system store".into());
            }
            Some(store)
        }
    };
    let verifier: Arc<dyn ServerCertVerifier> = match store {
        // libpq's prefer and require without a CA: encrypted, the peer not authenticated.
        None => Arc::new(Unchecked(provider)),
        Some(store) => {
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                .build()
                .map_err(|e| e.to_string())?;
            if mode == Mode::VerifyFull {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Accepts any certificate (the handshake's signatures are still checked): what libpq's
/// `prefer` and `require` do without a CA file.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name in the certificate is not
/// compared with the host.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_read_and_removed_from_urls_and_key_value_strings() {
        let s = TlsSettings::parse(
            "postgres://u:pw@db:5432/app?application_name=x&sslmode=verify-full&sslrootcert=%2Fca.pem",
        )
        .unwrap();
        assert_eq!(s.mode, Mode::VerifyFull);
        assert_eq!(s.roots, Roots::File("/ca.pem".into()));
        assert_eq!(s.rest, "postgres://u:pw@db:5432/app?application_name=x");
        let s = TlsSettings::parse("host=db user=u sslmode=require dbname=app").unwrap();
        assert_eq!((s.mode, s.roots), (Mode::Require, Roots::Unchecked));
        assert_eq!(s.rest, "host=db user=u dbname=app");
        let s = TlsSettings::parse("postgres://u@db/app").unwrap();
        assert_eq!(s.mode, Mode::Prefer);
        assert_eq!(s.rest, "postgres://u@db/app");
    }

    #[test]
    fn bad_settings_are_refused_without_quoting_the_string() {
        let err = TlsSettings::parse("postgres://u:secret@db/app?sslmode=sometimes").unwrap_err();
        assert!(
            err.contains("sometimes") && !err.contains("secret"),
            "{err}"
        );
        let err = TlsSettings::parse("postgres://u@db/app?sslmode=verify-ca").unwrap_err();
        assert!(err.contains("sslrootcert"), "{err}");
        let err = TlsSettings::check("postgres://u@db/app?sslmode=require&sslrootcert=/nowhere")
            .unwrap_err();
        assert!(err.contains("/nowhere"), "{err}");
    }
}
