//! The TLS client for `https://` providers: rustls with the ring provider,
//! trusting either the `caCertificates` bundle or the system's PEM bundle.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// Where the system's CA bundle is looked for when `SSL_CERT_FILE` is not
/// set: Debian/Ubuntu/Alpine, Fedora/RHEL, then macOS/BSD layouts.
pub const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// A client connector trusting the certificates in the PEM file at
/// `ca_certificates`, or the system bundle when it is `None`. Errors name
/// the file read and where its path came from.
pub(super) fn connector(ca_certificates: Option<&str>) -> Result<TlsConnector, String> {
    let (origin, path) = match ca_certificates {
        Some(p) => ("caCertificates".to_string(), PathBuf::from(p)),
        None => system_bundle()?,
    };
    let roots = load_roots(&path).map_err(|e| format!("{origin}: {}: {e}", path.display()))?;
    // An explicit provider rather than the process default, so the embedding
    // host's choice (or lack of one) does not change this client.
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("configuring TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

fn system_bundle() -> Result<(String, PathBuf), String> {
    if let Some(p) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) {
        return Ok(("SSL_CERT_FILE".into(), PathBuf::from(p)));
    }
    SYSTEM_BUNDLES
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(|p| ("the system CA bundle".into(), p.to_path_buf()))
        .ok_or_else(|| {
            format!(
                "no system CA bundle: SSL_CERT_FILE is not set and none of {} exists; \
                 set caCertificates",
                SYSTEM_BUNDLES.join(", ")
            )
        })
}

/// Every certificate in a PEM file. Certificates webpki cannot use are
/// skipped, as system bundles carry a few; a file with none usable is an
/// error.
fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(describe)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(describe)?;
    let mut roots = RootCertStore::empty();
    let (added, _skipped) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err("holds no PEM certificate that can be used as a CA".into());
    }
    Ok(roots)
}

fn describe(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => e.to_string(),
        other => format!("bad PEM: {other}"),
    }
}
