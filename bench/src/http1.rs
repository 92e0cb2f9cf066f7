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
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
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
        content_type: &str,
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
        body: Option<(&str, Bytes)>,
    ) -> Result<Bytes, Failure> {
        let read = async |status: StatusCode, _: &HeaderMap, body: Incoming| {
            let body = body.collect().await?.to_bytes();
            Ok(if status.is_success() {
                Ok(body)
            } else {
                Err((
                    Some(status.as_u16()),
                    String::from_utf8_lossy(&body).chars().take(500).collect(),
                ))
            })
        };
        self.exchange(method, path_and_query, accept, body, read)
            .await?
    }

    /// Sends one request and hands the answer's status, headers and unread body to `read`,
    /// whose result is returned; for callers that need a header or want to count a large body
    /// as it arrives rather than hold it. The timeout covers `read` too. A transport error
    /// (`read`'s included) or a timeout drops the connection, so the next request opens a new
    /// one; so does a body that `read` leaves unread before all of it has arrived.
    pub async fn exchange<T>(
        &mut self,
        method: Method,
        path_and_query: &str,
        accept: &str,
        body: Option<(&str, Bytes)>,
        read: impl AsyncFnOnce(StatusCode, &HeaderMap, Incoming) -> hyper::Result<T>,
    ) -> Result<T, Failure> {
        let req = self
            .build(method, path_and_query, accept, body)
            .map_err(|e| (None, format!("request: {e}")))?;
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.send(req, read)).await {
            Ok(Ok(answer)) => Ok(answer),
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

    fn build(
        &self,
        method: Method,
        path_and_query: &str,
        accept: &str,
        body: Option<(&str, Bytes)>,
    ) -> hyper::http::Result<hyper::Request<Full<Bytes>>> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}/{path_and_query}", self.prefix))
            .header(HOST, &self.authority)
            .header(ACCEPT, accept);
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        match body {
            Some((content_type, body)) => {
                req.header(CONTENT_TYPE, content_type).body(Full::new(body))
            }
            None => req.body(Full::new(Bytes::new())),
        }
    }

    async fn send<T>(
        &mut self,
        mut req: hyper::Request<Full<Bytes>>,
        read: impl AsyncFnOnce(StatusCode, &HeaderMap, Incoming) -> hyper::Result<T>,
    ) -> anyhow::Result<T> {
        // A kept connection may be closing under us (the server's idle close, or a body the
        // last caller left unread): a request that never left is sent again on a new one.
        let mut fresh = false;
        let answer = loop {
            let sender = match &mut self.sender {
                Some(s) if !s.is_closed() => s,
                _ => {
                    fresh = true;
                    self.sender.insert(connect(&self.authority).await?)
                }
            };
            let unsent = match sender.ready().await {
                Ok(()) => match sender.try_send_request(req).await {
                    Ok(answer) => break answer,
                    Err(mut e) => match e.take_message() {
                        Some(unsent) if !fresh => unsent,
                        _ => return Err(e.into_error().into()),
                    },
                },
                Err(_) if !fresh => req,
                Err(e) => return Err(e.into()),
            };
            self.sender = None;
            req = unsent;
        };
        let (head, body) = answer.into_parts();
        Ok(read(head.status, &head.headers, body).await?)
    }
}

/// A new HTTP/1.1 connection to `authority`, driven by a task of its own.
async fn connect(authority: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(authority).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        // Ends when the server closes or the sender is dropped; nothing to report.
        let _ = conn.await;
    });
    Ok(sender)
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
    async fn exchange_hands_the_head_and_the_unread_body_over() {
        let (base, accepted) = server().await;
        let mut conn = Connection::new(&base, Duration::from_secs(5)).unwrap();
        let count = async |status: StatusCode, headers: &HeaderMap, mut body: Incoming| {
            let length = headers.get(hyper::header::CONTENT_LENGTH).cloned();
            let mut seen = 0;
            while let Some(frame) = body.frame().await {
                seen += frame?.data_ref().map_or(0, Bytes::len);
            }
            Ok((status.as_u16(), length, seen))
        };
        let (status, length, seen) = conn
            .exchange(Method::GET, "ok/x", "*/*", None, count)
            .await
            .unwrap();
        assert_eq!((status, seen), (200, "GET /base/ok/x ".len()));
        assert_eq!(length.unwrap(), seen.to_string().as_str());
        let posted = Some(("text/plain", Bytes::from_static(b"abc")));
        let (status, _, seen) = conn
            .exchange(Method::PUT, "nope", "*/*", posted, count)
            .await
            .unwrap();
        assert_eq!((status, seen), (404, "PUT /base/nope abc".len()));
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        // A body left unread while still arriving closes that connection (hyper does not
        // drain it); the next request opens another.
        let large = Some(("text/plain", Bytes::from(vec![b'x'; 4 << 20])));
        let status = conn
            .exchange(Method::POST, "ok", "*/*", large, async |s, _, _| Ok(s))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        let body = conn.get("ok/again", "text/plain").await.unwrap();
        assert_eq!(body, "GET /base/ok/again ");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
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
