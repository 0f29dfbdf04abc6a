//! [`Server`]: the service on its listener, with the monitoring endpoint,
//! the config watcher and graceful shutdown around it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use mixer_dispatch::Dispatcher;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::error::Error;
use crate::options::Options;
use crate::service::MixerService;

/// The default gRPC address: loopback, the original Mixer's port.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:9091";
/// The default monitoring address: loopback, the original's self-monitoring port.
pub const DEFAULT_MONITORING_ADDRESS: &str = "127.0.0.1:9093";

/// TLS for the gRPC listener: the server's certificate chain and key, and
/// for mutual TLS the CA that client certificates must chain to.
#[cfg(feature = "tls")]
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// PEM certificate chain of the server.
    pub cert_pem: Vec<u8>,
    /// PEM private key of the server.
    pub key_pem: Vec<u8>,
    /// PEM CA certificate(s); when set, clients must present a certificate
    /// signed by one (mutual TLS).
    pub client_ca_pem: Option<Vec<u8>>,
}

/// Configures a [`Server`]: where it listens, its limits, where its config
/// comes from.
#[derive(Debug)]
pub struct Builder {
    dispatcher: Dispatcher,
    options: Options,
    address: SocketAddr,
    monitoring: Option<SocketAddr>,
    config_dir: Option<PathBuf>,
    #[cfg(feature = "tls")]
    tls: Option<TlsOptions>,
}

impl Builder {
    /// The server's limits and timings (default [`Options::default`]).
    pub fn options(mut self, options: Options) -> Builder {
        self.options = options;
        self
    }

    /// The gRPC address (default [`DEFAULT_ADDRESS`]; port 0 picks a free
    /// port, see [`Server::local_addr`]).
    pub fn address(mut self, address: SocketAddr) -> Builder {
        self.address = address;
        self
    }

    /// Serves `/metrics`, `/health` and `/ready` over HTTP on `address`
    /// (off unless set).
    pub fn monitoring_address(mut self, address: SocketAddr) -> Builder {
        self.monitoring = Some(address);
        self
    }

    /// Loads the configuration from every `*.yaml`, `*.yml` and `*.json`
    /// file under `dir` when binding (a rejected configuration fails
    /// [`bind`](Builder::bind), listing every problem), then watches it and
    /// reloads on change.
    pub fn config_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.config_dir = Some(dir.into());
        self
    }

    /// Serves gRPC over TLS (mutual TLS when `client_ca_pem` is set).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: TlsOptions) -> Builder {
        self.tls = Some(tls);
        self
    }

    /// Loads the config directory, if any, and binds the listeners.
    pub async fn bind(self) -> Result<Server, Error> {
        if let Some(dir) = &self.config_dir {
            let (d, dir2) = (self.dispatcher.clone(), dir.clone());
            tokio::task::spawn_blocking(move || crate::watch::load_dir(&d, &dir2))
                .await
                .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))?;
        }
        let grpc = bind(self.address).await?;
        let monitoring = match self.monitoring {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        Ok(Server {
            service: MixerService::new(self.dispatcher, self.options),
            grpc,
            monitoring,
            config_dir: self.config_dir,
            #[cfg(feature = "tls")]
            tls: self.tls,
        })
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// A Mixer gRPC server, bound and ready to serve.
///
/// ```
/// use mixer_adapters::Registry;
/// use mixer_dispatch::{Dispatcher, Options as DispatchOptions};
/// use mixer_server::Server;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mixer_server::Error> {
/// let dispatcher = Dispatcher::new(
///     Registry::builtin(),
///     tokio::runtime::Handle::current(),
///     DispatchOptions::default(),
/// );
/// let server = Server::builder(dispatcher)
///     .address("127.0.0.1:0".parse().unwrap())
///     .monitoring_address("127.0.0.1:0".parse().unwrap())
///     .bind()
///     .await?;
/// println!("gRPC on {}", server.local_addr());
/// // Serve until the future resolves (a signal handler, in a binary),
/// // then drain in-flight requests and flush report queues.
/// let done = server.serve_until(async {}).await?;
/// assert!(done.drained && done.flushed);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    service: MixerService,
    grpc: TcpListener,
    monitoring: Option<TcpListener>,
    config_dir: Option<PathBuf>,
    #[cfg(feature = "tls")]
    tls: Option<TlsOptions>,
}

/// How a graceful shutdown went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shutdown {
    /// Every stream ended within the drain timeout (otherwise the
    /// remaining connections were dropped).
    pub drained: bool,
    /// Every accepted report batch reached its handler within the flush
    /// timeout.
    pub flushed: bool,
}

impl Server {
    /// A builder serving from `dispatcher`.
    pub fn builder(dispatcher: Dispatcher) -> Builder {
        Builder {
            dispatcher,
            options: Options::default(),
            address: DEFAULT_ADDRESS.parse().expect("a valid address literal"),
            monitoring: None,
            config_dir: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The bound gRPC address.
    pub fn local_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .expect("a bound TCP listener has an address")
    }

    /// The bound monitoring address, if any.
    pub fn monitoring_addr(&self) -> Option<SocketAddr> {
        self.monitoring
            .as_ref()
            .map(|l| l.local_addr().expect("a bound TCP listener has an address"))
    }

    /// The service (for its counters and metrics).
    pub fn service(&self) -> &MixerService {
        &self.service
    }

    /// Serves until `signal` resolves, then shuts down gracefully: stops
    /// accepting connections and streams, lets every stream answer what it
    /// has in flight and end (at most [`Options::drain_timeout`]), then
    /// flushes report queues (at most [`Options::flush_timeout`]).
    pub async fn serve_until(
        self,
        signal: impl Future<Output = ()> + Send,
    ) -> Result<Shutdown, Error> {
        let shared = self.service.shared.clone();
        let o = &shared.options;
        let mut builder = tonic::transport::Server::builder()
            .http2_keepalive_interval(o.keepalive_interval)
            .http2_keepalive_timeout(Some(o.keepalive_timeout))
            .max_concurrent_streams(Some(o.max_streams_per_connection));
        #[cfg(feature = "tls")]
        if let Some(t) = &self.tls {
            builder = builder
                .tls_config(crate::tls::config(t))
                .map_err(|e| Error::Tls(e.to_string()))?;
        }
        let incoming = TcpIncoming::from(self.grpc)
            .with_nodelay(Some(true))
            .with_keepalive(o.tcp_keepalive);
        let serve = builder
            .add_service(self.service.clone())
            .serve_with_incoming_shutdown(incoming, shared.shutdown_signal());
        let mut serve = tokio::spawn(serve);

        let (monitor_stop, monitor_stopped) = tokio::sync::oneshot::channel::<()>();
        let monitor = self.monitoring.map(|l| {
            tokio::spawn(crate::monitor::serve(l, shared.clone(), async move {
                let _ = monitor_stopped.await;
            }))
        });
        let watcher = self
            .config_dir
            .map(|dir| tokio::spawn(crate::watch::watch(dir, shared.clone())));

        tokio::pin!(signal);
        let early = tokio::select! {
            r = &mut serve => Some(r),
            _ = &mut signal => None,
        };
        shared.begin_shutdown();
        let drained = match early {
            Some(Ok(Ok(()))) => true,
            Some(Ok(Err(e))) => {
                let _ = monitor_stop.send(());
                return Err(e.into());
            }
            Some(Err(join)) => {
                tracing::error!("gRPC server task failed: {join}");
                false
            }
            None => match tokio::time::timeout(o.drain_timeout, &mut serve).await {
                Ok(_) => true,
                Err(_) => {
                    tracing::warn!(
                        "drain timeout ({:?}) passed with streams still open; dropping them",
                        o.drain_timeout
                    );
                    serve.abort();
                    false
                }
            },
        };
        let flushed = tokio::time::timeout(o.flush_timeout, shared.dispatcher.flush())
            .await
            .is_ok();
        if !flushed {
            tracing::warn!("report queues not flushed within {:?}", o.flush_timeout);
        }
        if let Some(w) = watcher {
            let _ = w.await;
        }
        let _ = monitor_stop.send(());
        if let Some(m) = monitor {
            let _ = m.await;
        }
        tracing::info!(drained, flushed, "server stopped");
        Ok(Shutdown { drained, flushed })
    }
}
