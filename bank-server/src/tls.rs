//! HTTPS: the server certificate and key (PEM files), the rustls settings, and the accept loop
//! that serves each TLS connection with hyper.
//!
//! One TLS stack in the workspace: rustls 0.23 with the ring provider, named explicitly here so
//! that no process-wide default is needed. TLS 1.2 and 1.3, rustls's safe cipher suites, ALPN
//! `http/1.1` (the bank speaks HTTP/1.1 only).
//!
//! The accept loop never waits for a handshake: each accepted connection gets its own task,
//! which does the handshake (bounded by [`HANDSHAKE_TIMEOUT`]) and then serves HTTP/1.1 on it
//! with the router, the peer's address in [`axum::extract::ConnectInfo`] as on plain HTTP.
//! On shutdown the loop stops accepting and waits for the requests in flight, as
//! `axum::serve`'s graceful shutdown does.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tower::Service;

/// A client that has not finished its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate file {}: {source}", .path.display())]
    CertFile { path: PathBuf, source: rustls_pki_types::pem::Error },
    #[error("TLS certificate file {} holds no CERTIFICATE block (PEM)", .0.display())]
    NoCert(PathBuf),
    #[error("TLS key file {}: no private key in it (PEM: PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)", .0.display())]
    KeyFile(PathBuf),
    /// The key file can be read by group or others: the message gives the `chmod` to run.
    #[error(transparent)]
    Permissions(#[from] crate::private::PrivateFileError),
    #[error("the TLS certificate and key cannot be used together: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The rustls server settings from a certificate chain file (the server's certificate first,
/// then any intermediates) and its private key file, both PEM. The key file must be private
/// (mode 0600), as every key file of the bank.
pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|source| TlsError::CertFile { path: cert_path.to_owned(), source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert(cert_path.to_owned()));
    }
    crate::private::check("TLS key file", key_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|_| TlsError::KeyFile(key_path.to_owned()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then finishes the
/// connections that are serving requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        // The router with this connection's `ConnectInfo<SocketAddr>`.
        let Ok(service) = make_service.call(peer).await;
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(service);
            let connection =
                hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// An accept error: a connection that went away before it was accepted is nothing; anything
/// else (out of file descriptors) is logged and the loop waits a moment before trying again,
/// as `axum::serve` does, rather than spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use axum::extract::ConnectInfo;
    use axum::routing::get;

    use super::*;

    /// A CA and a certificate for 127.0.0.1 signed by it: (CA PEM, certificate path, key path).
    fn certificate(dir: &Path) -> (String, PathBuf, PathBuf) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
        let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server-key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        crate::private::create_if_missing("TLS key file", &key_path).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (ca.pem(), cert_path, key_path)
    }

    /// A handler that needs the peer's address answers on both paths: `ConnectInfo` is there.
    #[tokio::test]
    async fn handlers_get_the_peer_address_over_tls_and_plain_http() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = certificate(dir.path());
        let app = || {
            Router::new().route("/", get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }))
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let tls_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (tls_addr, plain_addr) = (tls_listener.local_addr().unwrap(), plain_listener.local_addr().unwrap());
        let config = server_config(&cert, &key).unwrap();
        let tls_server = tokio::spawn(serve(tls_listener, config, app(), async move {
            let _ = stop_rx.await;
        }));
        let plain_server = tokio::spawn(crate::serve_plain(plain_listener, app(), std::future::pending()));
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
            .build()
            .unwrap();
        for url in [format!("https://{tls_addr}/"), format!("http://{plain_addr}/")] {
            let r = client.get(&url).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200, "{url}");
            let peer: SocketAddr = r.text().await.unwrap().parse().unwrap();
            assert!(
                peer.ip().is_loopback() && peer.port() != tls_addr.port() && peer.port() != plain_addr.port(),
                "{peer}"
            );
        }
        // Shutdown: the TLS loop returns once asked.
        stop_tx.send(()).unwrap();
        drop(client);
        tokio::time::timeout(Duration::from_secs(10), tls_server).await.unwrap().unwrap().unwrap();
        plain_server.abort();
    }

    #[test]
    fn unusable_files_are_refused_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (_, cert, key) = certificate(dir.path());
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(matches!(server_config(&empty, &key), Err(TlsError::NoCert(_))));
        // The certificate where the key should be: no private key in it.
        let copy = dir.path().join("cert-as-key.pem");
        crate::private::create_if_missing("TLS key file", &copy).unwrap();
        std::fs::write(&copy, std::fs::read(&cert).unwrap()).unwrap();
        assert!(matches!(server_config(&cert, &copy), Err(TlsError::KeyFile(_))));
        assert!(matches!(server_config(&dir.path().join("none.pem"), &key), Err(TlsError::CertFile { .. })));
        // A key that does not belong to the certificate.
        let (_, other_cert, _) = certificate(&{
            let d = dir.path().join("other");
            std::fs::create_dir(&d).unwrap();
            d
        });
        let e = server_config(&other_cert, &key).unwrap_err();
        assert!(matches!(e, TlsError::Rustls(_)), "{e}");
        server_config(&cert, &key).unwrap();
    }
}
