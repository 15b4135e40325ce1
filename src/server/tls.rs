//! HTTPS on the listener: the certificate and key of `RAMPART_TLS_CERT_FILE` and
//! `RAMPART_TLS_KEY_FILE`, reloaded without a restart.
//!
//! Every new TLS handshake asks [`Certificates`] for the current certificate, so replacing it
//! is one pointer swap: connections already open keep the certificate they started with, and
//! the next handshake gets the new one. [`Certificates::reload`] reads both files again; if
//! they do not load (half-written, a key that does not match), the old certificate stays and
//! the error is returned (and logged by [`reload_on_sighup`]), so a bad renewal never takes
//! the listener down.
//!
//! The signal is wired in [`reload_on_sighup`] alone: one tokio SIGHUP stream of its own
//! (tokio delivers each signal to every stream registered for it), so other reloads can
//! listen for the same signal independently.

use std::any::Any;
use std::sync::{Arc, RwLock};

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use slog::{error, info, Logger};

use crate::config::tls as pem;
use crate::config::ListenerTls;

/// The listener's certificate, swappable while it serves.
#[derive(Debug)]
pub struct Certificates {
    files: ListenerTls,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Loads the files (blocking: call at start-up or off the async threads).
    pub fn load(files: &ListenerTls) -> Result<Arc<Certificates>, String> {
        let key = pem::certified_key(&files.cert_file, &files.key_file)?;
        Ok(Arc::new(Certificates {
            files: files.clone(),
            current: RwLock::new(key),
        }))
    }

    /// Reads the files again and serves their certificate to new connections; on failure
    /// the current one stays. Blocking (two small files): call it off the async threads.
    pub fn reload(&self) -> Result<(), String> {
        let key = pem::certified_key(&self.files.cert_file, &self.files.key_file)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
        Ok(())
    }

    /// The rustls settings of a listener serving these certificates.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, String> {
        Ok(ServerConfig::builder_with_provider(pem::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(self.clone()))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// Reloads `certs` on every SIGHUP for as long as the server runs, logging the outcome.
/// Must be called on the server's runtime.
pub fn reload_on_sighup(certs: Arc<Certificates>, log: Logger) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())?;
    actix_web::rt::spawn(async move {
        while hangups.recv().await.is_some() {
            let certs = certs.clone();
            match actix_web::rt::task::spawn_blocking(move || certs.reload()).await {
                Ok(Ok(())) => info!(log, "reloaded the TLS certificate"; "signal" => "SIGHUP"),
                Ok(Err(e)) => error!(log, "cannot reload the TLS certificate; keeping the old one";
                                     "error" => e),
                Err(e) => error!(log, "TLS certificate reload failed"; "error" => %e),
            }
        }
    });
    Ok(())
}

/// `HttpServer::on_connect` for a TLS listener: hands the TCP socket under the TLS stream to
/// the same hook as a plain listener's (`ws::stall`).
pub fn on_connect(conn: &dyn Any, data: &mut Extensions) {
    match conn.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<TcpStream>>() {
        Some(tls) => crate::ws::stall::on_connect(tls.get_ref().0, data),
        None => crate::ws::stall::on_connect(conn, data),
    }
}
