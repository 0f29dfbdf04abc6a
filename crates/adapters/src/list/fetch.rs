//! Fetching a list: a minimal HTTP/1.1 GET over a tokio `TcpStream`,
//! wrapped in rustls for `https://`, or a local file. Enough for a
//! plain-text list; no redirects.

use std::path::PathBuf;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The largest list body accepted (64 MiB); a larger one fails the fetch.
pub const MAX_BODY_BYTES: u64 = 64 << 20;

/// Where a list comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provider {
    /// `http://host[:port]/path` or `https://host[:port]/path`.
    Http {
        /// Host name or address (IPv6 without brackets).
        host: String,
        /// Port (80, or 443 for https, unless given).
        port: u16,
        /// Path and query, starting with `/`.
        path: String,
        /// `https://`: the request goes over TLS, and the server's
        /// certificate must be valid for `host`.
        tls: bool,
    },
    /// `file:///path` (Better).
    File(PathBuf),
}

impl Provider {
    /// Parses a provider URL.
    pub fn parse(url: &str) -> Result<Provider, String> {
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err("a file:// URL needs a path".into());
            }
            return Ok(Provider::File(PathBuf::from(path)));
        }
        let (rest, tls, default_port) = if let Some(rest) = url.strip_prefix("https://") {
            (rest, true, 443)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (rest, false, 80)
        } else {
            return Err(format!(
                "{url:?} is not an http://, https:// or file:// URL"
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed '[' in the host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        // Checked here so that a host the certificate check could never
        // match fails validation rather than every fetch.
        if tls && ServerName::try_from(host).is_err() {
            return Err(format!(
                "{url:?}: {host:?} is not a valid DNS name or IP address for TLS"
            ));
        }
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("{url:?} has an invalid port {p:?}"))?,
        };
        Ok(Provider::Http {
            host: host.to_string(),
            port,
            path: path.to_string(),
            tls,
        })
    }

    /// Whether fetching needs a TLS client.
    pub fn is_tls(&self) -> bool {
        matches!(self, Provider::Http { tls: true, .. })
    }
}

/// A provider ready to fetch from: with its TLS client when it is
/// `https://`.
pub(super) struct Source {
    provider: Provider,
    tls: Option<TlsConnector>,
}

impl Source {
    /// Loads the trust roots an `https://` provider needs:
    /// `ca_certificates`, or the system bundle.
    pub(super) fn new(provider: Provider, ca_certificates: Option<&str>) -> Result<Source, String> {
        let tls = if provider.is_tls() {
            Some(super::tls::connector(ca_certificates)?)
        } else {
            None
        };
        Ok(Source { provider, tls })
    }

    /// Fetches the body, within `timeout` (connecting and the TLS handshake
    /// included).
    pub(super) async fn fetch(&self, timeout: Duration) -> Result<String, String> {
        let body = match tokio::time::timeout(timeout, self.fetch_bytes()).await {
            Ok(r) => r?,
            Err(_) => return Err(format!("timed out after {timeout:?}")),
        };
        String::from_utf8(body).map_err(|_| "the list is not UTF-8 text".to_string())
    }

    async fn fetch_bytes(&self) -> Result<Vec<u8>, String> {
        match &self.provider {
            Provider::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let meta =
                        std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    if meta.len() > MAX_BODY_BYTES {
                        return Err(format!(
                            "{} is larger than {MAX_BODY_BYTES} bytes",
                            path.display()
                        ));
                    }
                    std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
                })
                .await
                .map_err(|e| format!("reading the file failed: {e}"))?
            }
            Provider::Http {
                host, port, path, ..
            } => {
                let stream = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
                // `new` made a connector exactly when the provider is https.
                let Some(connector) = &self.tls else {
                    return http_get(stream, host, *port, path, false).await;
                };
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| format!("{host:?} is not a valid TLS server name: {e}"))?;
                let stream = connector
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))?;
                http_get(stream, host, *port, path, true).await
            }
        }
    }
}

async fn http_get<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    port: u16,
    path: &str,
    tls: bool,
) -> Result<Vec<u8>, String> {
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: mixer-listchecker\r\n\
         Accept: text/plain, */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    // TLS buffers the request; it must reach the socket before we wait.
    stream
        .flush()
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let limit = MAX_BODY_BYTES + 64 * 1024;
    let closed_cleanly = loop {
        match stream.read(&mut buf).await {
            Ok(0) => break true,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() as u64 > limit {
                    return Err(format!(
                        "the response is larger than {MAX_BODY_BYTES} bytes"
                    ));
                }
            }
            // Many servers close without TLS close_notify; the response's
            // own framing then tells whether it is complete.
            Err(e) if tls && e.kind() == std::io::ErrorKind::UnexpectedEof => break false,
            Err(e) => return Err(format!("reading the response: {e}")),
        }
    };
    parse_response(&raw, closed_cleanly)
}

/// Splits an HTTP/1.1 response read to its end into status and body,
/// decoding a chunked body. Anything but 200 is an error. A TLS connection
/// that did not end cleanly (no close_notify) is accepted only when the
/// response says where its body ends, since a cut body would otherwise
/// look whole.
fn parse_response(raw: &[u8], closed_cleanly: bool) -> Result<Vec<u8>, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the response has no complete header")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "the response header is not text")?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x response: {status_line:?}"));
    }
    if status != "200" {
        return Err(format!("the server answered {status_line:?}"));
    }
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        }
    }
    if chunked {
        return dechunk(body);
    }
    match length {
        Some(n) if body.len() < n => {
            Err(format!("the body ended after {} of {n} bytes", body.len()))
        }
        Some(n) => Ok(body[..n].to_vec()),
        None if !closed_cleanly => Err(
            "the TLS connection closed without close_notify and the response has no \
             Content-Length, so its body may be cut short"
                .into(),
        ),
        None => Ok(body.to_vec()),
    }
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line is cut short")?;
        let size_text = std::str::from_utf8(&body[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            return Err("a chunk is cut short".into());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Provider::parse("http://127.0.0.1:8080/list.txt?x=1").unwrap(),
            Provider::Http {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/list.txt?x=1".into(),
                tls: false,
            }
        );
        assert_eq!(
            Provider::parse("http://[::1]/").unwrap(),
            Provider::Http {
                host: "::1".into(),
                port: 80,
                path: "/".into(),
                tls: false,
            }
        );
        assert_eq!(
            Provider::parse("https://lists.example/a").unwrap(),
            Provider::Http {
                host: "lists.example".into(),
                port: 443,
                path: "/a".into(),
                tls: true,
            }
        );
        assert_eq!(
            Provider::parse("https://[::1]:8443").unwrap(),
            Provider::Http {
                host: "::1".into(),
                port: 8443,
                path: "/".into(),
                tls: true,
            }
        );
        assert_eq!(
            Provider::parse("file:///etc/list").unwrap(),
            Provider::File("/etc/list".into())
        );
        for bad in [
            "ftp://x",
            "http://",
            "http://h:99999/",
            "file://",
            "https://",
            "https://h:0x1/",
            "http://[::1/",
        ] {
            assert!(Provider::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Provider::parse("https://bad host/").unwrap_err(),
            "\"https://bad host/\": \"bad host\" is not a valid DNS name or IP address for TLS"
        );
    }

    #[test]
    fn responses() {
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef", true).unwrap(),
            b"abc"
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n", true)
                .unwrap(),
            b"abcde"
        );
        assert_eq!(
            parse_response(b"HTTP/1.0 200 OK\r\n\r\nall", true).unwrap(),
            b"all"
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n", true).unwrap_err(),
            "the server answered \"HTTP/1.1 404 Not Found\""
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab", true).is_err());
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                true
            )
            .is_err()
        );
        assert!(parse_response(b"garbage", true).is_err());
    }

    #[test]
    fn a_tls_connection_cut_without_close_notify_needs_a_framed_body() {
        let framed = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(parse_response(framed, false).unwrap(), b"abc");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked, false).unwrap(), b"a");
        let unframed = b"HTTP/1.1 200 OK\r\n\r\nab";
        assert_eq!(parse_response(unframed, true).unwrap(), b"ab");
        assert!(
            parse_response(unframed, false)
                .unwrap_err()
                .contains("without close_notify")
        );
    }
}
