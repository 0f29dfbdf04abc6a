//! The gRPC listener over TLS and mutual TLS, with a CA, server and client
//! certificates generated at test time.

mod server_support;

use std::sync::Arc;
use std::time::Duration;

use mixer_dispatch::{Dispatcher, Options as DispatchOptions};
use mixer_proto::code;
use mixer_proto::istio::mixer::v1::mixer_client::MixerClient;
use mixer_server::{Server, TlsOptions};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use server_support::*;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn generate_pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca: ca.pem(),
        server: leaf("localhost"),
        client: leaf("proxy.example"),
    }
}

async fn channel(
    addr: std::net::SocketAddr,
    tls: Option<ClientTlsConfig>,
) -> Result<Channel, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Channel::from_shared(format!("{scheme}://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| e.to_string())?;
    }
    endpoint.connect().await.map_err(|e| format!("{e:?}"))
}

/// One check on a new stream: the answer's code, or the call's error.
async fn one_check(ch: Channel) -> Result<i32, tonic::Status> {
    let mut client = MixerClient::new(ch);
    let mut s = CheckStream::try_open(&mut client).await?;
    s.send(0, &bag("/tls", &[])).await;
    Ok(code(&s.answer().await))
}

/// A server on a loopback port with `tls`; stopped by sending on the
/// returned channel, its task returning how the shutdown went.
async fn serve(
    tls: TlsOptions,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<mixer_server::Shutdown, mixer_server::Error>>,
    tempfile::TempDir,
) {
    let counts = Arc::new(ProbeCounts::default());
    let dispatcher = Dispatcher::new(
        registry(&counts),
        tokio::runtime::Handle::current(),
        DispatchOptions::default(),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.yaml"), standard_config("0s")).unwrap();
    let server = Server::builder(dispatcher)
        .address("127.0.0.1:0".parse().unwrap())
        .config_dir(dir.path())
        .tls(tls)
        .bind()
        .await
        .unwrap();
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve_until(async {
        let _ = stopped.await;
    }));
    (addr, stop, task, dir)
}

/// Whether a client with `tls` (plaintext when `None`) is refused.
async fn refused(addr: std::net::SocketAddr, tls: Option<ClientTlsConfig>) -> bool {
    match channel(addr, tls).await {
        Err(_) => true,
        Ok(ch) => one_check(ch).await.is_err(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_tls_serves_clients_that_trust_its_ca_without_a_client_certificate() {
    let pki = generate_pki();
    let (addr, stop, task, _dir) = serve(TlsOptions {
        cert_pem: pki.server.0.clone().into_bytes(),
        key_pem: pki.server.1.clone().into_bytes(),
        client_ca_pem: None,
    })
    .await;

    let trusting = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("localhost");
    let ch = channel(addr, Some(trusting)).await.expect("TLS handshake");
    assert_eq!(one_check(ch).await.unwrap(), code::OK);

    // A client that trusts another CA does not accept this server.
    let other = generate_pki();
    let distrusting = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&other.ca))
        .domain_name("localhost");
    assert!(
        refused(addr, Some(distrusting)).await,
        "an untrusted server was accepted"
    );
    // Nor does one expecting another name.
    let wrong_name = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("mixer.example");
    assert!(
        refused(addr, Some(wrong_name)).await,
        "a certificate for another name was accepted"
    );
    assert!(refused(addr, None).await, "a plaintext client was served");

    let _ = stop.send(());
    let done = task.await.unwrap().unwrap();
    assert!(done.drained && done.flushed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_clients_with_a_certificate_from_the_ca() {
    let pki = generate_pki();
    let (addr, stop, task, _dir) = serve(TlsOptions {
        cert_pem: pki.server.0.clone().into_bytes(),
        key_pem: pki.server.1.clone().into_bytes(),
        client_ca_pem: Some(pki.ca.clone().into_bytes()),
    })
    .await;

    let trust = || {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&pki.ca))
            .domain_name("localhost")
    };
    // With a client certificate signed by the CA: served.
    let with_cert = trust().identity(Identity::from_pem(&pki.client.0, &pki.client.1));
    let ch = channel(addr, Some(with_cert))
        .await
        .expect("mTLS handshake");
    assert_eq!(one_check(ch).await.unwrap(), code::OK);

    // Without a client certificate: the handshake (or the first call) fails.
    assert!(
        refused(addr, Some(trust())).await,
        "a client without a certificate was served"
    );
    // With a certificate from another CA: likewise.
    let other = generate_pki();
    let foreign = trust().identity(Identity::from_pem(&other.client.0, &other.client.1));
    assert!(
        refused(addr, Some(foreign)).await,
        "a client certificate from another CA was accepted"
    );
    // Plaintext on the TLS port: refused.
    assert!(refused(addr, None).await, "a plaintext client was served");

    let _ = stop.send(());
    let done = task.await.unwrap().unwrap();
    assert!(done.drained && done.flushed);
}
