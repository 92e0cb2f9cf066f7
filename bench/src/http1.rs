//! One HTTP/1.1 keep-alive connection per load-generating task, as wrk keeps one per
//! connection slot. A pooled client (reqwest) opened a new TCP connection for about one
//! request in four at one client (743 connects for 2,657 requests, `strace -c`): its pool gets a
//! connection back only after the response is read, in a task of its own, so a request sent
//! right after races a fresh connect, and the extra connection is closed again when both go
//! idle. Each reconnect costs the server an accept, a handshake and a close, and the client a
//! connect, inside the measured latency.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a request failed: the status when one came back, and what was said.
pub type Failure = (Option<u16>, String);

/// A base URL's address and path prefix, and the connection to it (opened on first use and
/// again after a failure).
pub struct Connection {
    /// `host:port`, what is dialled and what the Host header says.
    authority: String,
    prefix: String,
    timeout: Duration,
    /// Sent with every request (an `Authorization`, say).
    headers: Vec<(HeaderName, HeaderValue)>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    /// For `base` (`http://host:port[/path]`); connects lazily.
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(base)?;
        anyhow::ensure!(url.scheme() == "http", "only http:// bases: {base}");
        let host = url
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("no host in {base}"))?
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        Ok(Self {
            authority: format!("{host}:{port}"),
            prefix: url.path().trim_end_matches('/').to_owned(),
            timeout,
            headers: Vec::new(),
            sender: None,
        })
    }

    /// Sends `name: value` with every request.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// `GET {base}/{path_and_query}` with `accept`; see [`Self::request`].
    pub async fn get(&mut self, path_and_query: &str, accept: &str) -> Result<Bytes, Failure> {
        self.request(Method::GET, path_and_query, accept, None)
            .await
    }

    /// `POST {base}/{path}` of `body` as `content_type`; see [`Self::request`].
    pub async fn post(
        &mut self,
        path: &str,
        accept: &str,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<Bytes, Failure> {
        self.request(Method::POST, path, accept, Some((content_type, body)))
            .await
    }

    /// The body of a 2xx answer, read to its end, else the status and the start of the body.
    /// A transport error or a timeout drops the connection, so the next request opens a new
    /// one.
    pub async fn request(
        &mut self,
        method: Method,
        path_and_query: &str,
        accept: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<Bytes, Failure> {
        let timeout = self.timeout;
        let sent = self.send(method, path_and_query, accept, body);
        match tokio::time::timeout(timeout, sent).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                self.sender = None;
                Err((None, format!("transport: {e}")))
            }
            Err(_) => {
                self.sender = None;
                Err((None, format!("timed out after {:?}", self.timeout)))
            }
        }
    }

    async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        accept: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> anyhow::Result<Result<Bytes, Failure>> {
        let sender = match &mut self.sender {
            Some(s) if !s.is_closed() => s,
            _ => {
                let tcp = TcpStream::connect(&self.authority).await?;
                tcp.set_nodelay(true)?;
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(async move {
                    // Ends when the server closes or the sender is dropped; nothing to report.
                    let _ = conn.await;
                });
                self.sender.insert(sender)
            }
        };
        sender.ready().await?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}/{path_and_query}", self.prefix))
            .header(HOST, &self.authority)
            .header(ACCEPT, accept);
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        let req = match body {
            Some((content_type, body)) => {
                req.header(CONTENT_TYPE, content_type).body(Full::new(body))
            }
            None => req.body(Full::new(Bytes::new())),
        }?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(if status.is_success() {
            Ok(body)
        } else {
            Err((
                Some(status.as_u16()),
                String::from_utf8_lossy(&body).chars().take(500).collect(),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::net::TcpListener;

    /// `{method or x-said header} {path} {body}`, 200 under `/base/ok`, else 404.
    async fn answer(
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
        let path = req.uri().to_string();
        let status = if path.starts_with("/base/ok") {
            200
        } else {
            404
        };
        let mut said = match req.headers().get("x-said") {
            Some(v) => format!("{} {path} ", v.to_str().unwrap_or("?")),
            None => format!("{} {path} ", req.method()),
        }
        .into_bytes();
        said.extend_from_slice(&req.into_body().collect().await?.to_bytes());
        let mut resp = hyper::Response::new(Full::new(Bytes::from(said)));
        *resp.status_mut() = hyper::StatusCode::from_u16(status).expect("a status");
        Ok(resp)
    }

    /// A server that counts the connections it accepts and answers with [`answer`].
    async fn server() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(answer);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        (format!("http://{addr}/base/"), accepted)
    }

    #[tokio::test]
    async fn requests_share_one_connection() {
        let (base, accepted) = server().await;
        let mut conn = Connection::new(&base, Duration::from_secs(5)).unwrap();
        for i in 0..50 {
            let body = conn.get(&format!("ok?i={i}"), "text/plain").await.unwrap();
            assert_eq!(body, format!("GET /base/ok?i={i} "));
        }
        let body = conn
            .post(
                "ok",
                "text/plain",
                "text/plain",
                Bytes::from_static(b"sent"),
            )
            .await
            .unwrap();
        assert_eq!(body, "POST /base/ok sent");
        let (status, said) = conn.get("missing", "text/plain").await.unwrap_err();
        assert_eq!((status, said.as_str()), (Some(404), "GET /base/missing "));
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        let mut conn = Connection::new(&base, Duration::from_secs(5))
            .unwrap()
            .with_header(
                HeaderName::from_static("x-said"),
                HeaderValue::from_static("hi"),
            );
        let body = conn.get("ok", "text/plain").await.unwrap();
        assert_eq!(body, "hi /base/ok ");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error_then_retried() {
        // A port nothing listens on: bind, note it, close.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut conn =
            Connection::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5)).unwrap();
        let (status, said) = conn.get("x", "text/plain").await.unwrap_err();
        assert_eq!(status, None);
        assert!(said.starts_with("transport:"), "{said}");
        assert!(Connection::new("https://example.org", Duration::from_secs(1)).is_err());
    }
}
