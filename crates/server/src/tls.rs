//! TLS settings for tonic (rustls with ring).

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::server::TlsOptions;

pub(crate) fn config(t: &TlsOptions) -> ServerTlsConfig {
    let mut c = ServerTlsConfig::new().identity(Identity::from_pem(&t.cert_pem, &t.key_pem));
    if let Some(ca) = &t.client_ca_pem {
        c = c.client_ca_root(Certificate::from_pem(ca));
    }
    c
}
