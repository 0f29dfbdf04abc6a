//! Fetching a list: a minimal HTTP/1.1 GET over a tokio `TcpStream`, or a
//! local file. Enough for a plain-text list; no redirects, no TLS.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest list body accepted (64 MiB); a larger one fails the fetch.
pub const MAX_BODY_BYTES: u64 = 64 << 20;

/// Where a list comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provider {
    /// `http://host[:port]/path`.
    Http {
        /// Host name or address (IPv6 without brackets).
        host: String,
        /// Port (80 unless given).
        port: u16,
        /// Path and query, starting with `/`.
        path: String,
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
        if url.starts_with("https://") {
            return Err(
                "https:// is not supported (this build has no TLS); use http:// or file://".into(),
            );
        }
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(format!("{url:?} is not an http:// or file:// URL"));
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
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("{url:?} has an invalid port {p:?}"))?,
        };
        Ok(Provider::Http {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// Fetches the body, within `timeout`.
    pub async fn fetch(&self, timeout: Duration) -> Result<String, String> {
        let body = match tokio::time::timeout(timeout, self.fetch_bytes()).await {
            Ok(r) => r?,
            Err(_) => return Err(format!("timed out after {timeout:?}")),
        };
        String::from_utf8(body).map_err(|_| "the list is not UTF-8 text".to_string())
    }

    async fn fetch_bytes(&self) -> Result<Vec<u8>, String> {
        match self {
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
            Provider::Http { host, port, path } => http_get(host, *port, path).await,
        }
    }
}

async fn http_get(host: &str, port: u16, path: &str) -> Result<Vec<u8>, String> {
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
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
    let mut raw = Vec::new();
    let limit = MAX_BODY_BYTES + 64 * 1024;
    (&mut stream)
        .take(limit + 1)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| format!("reading the response: {e}"))?;
    if raw.len() as u64 > limit {
        return Err(format!(
            "the response is larger than {MAX_BODY_BYTES} bytes"
        ));
    }
    parse_response(&raw)
}

/// Splits an HTTP/1.1 response read to its end into status and body,
/// decoding a chunked body. Anything but 200 is an error.
pub(super) fn parse_response(raw: &[u8]) -> Result<Vec<u8>, String> {
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
                path: "/list.txt?x=1".into()
            }
        );
        assert_eq!(
            Provider::parse("http://[::1]/").unwrap(),
            Provider::Http {
                host: "::1".into(),
                port: 80,
                path: "/".into()
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
            "https://x/",
            "http://[::1/",
        ] {
            assert!(Provider::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses() {
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef").unwrap(),
            b"abc"
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
                .unwrap(),
            b"abcde"
        );
        assert_eq!(
            parse_response(b"HTTP/1.0 200 OK\r\n\r\nall").unwrap(),
            b"all"
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n").unwrap_err(),
            "the server answered \"HTTP/1.1 404 Not Found\""
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
                .is_err()
        );
        assert!(parse_response(b"garbage").is_err());
    }
}
