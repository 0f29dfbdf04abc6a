//! The crate's one error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What can stop a server from starting or serving.
///
/// Requests never fail with this type: a bad request is answered on its
/// stream (see the crate docs for which status each problem gets).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration directory could not be read.
    #[error("cannot read configuration {}: {source}", path.display())]
    ConfigRead {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: mixer_config::Error,
    },
    /// The initial configuration was rejected (every problem listed).
    #[error("{0}")]
    Config(#[from] mixer_dispatch::Error),
    /// The TLS settings are unusable (bad PEM, unreadable file).
    #[error("TLS: {0}")]
    Tls(String),
    /// The gRPC transport failed.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}
