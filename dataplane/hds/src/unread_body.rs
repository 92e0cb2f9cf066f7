//! A response sent before its request's body was read to the end (a 401, 413 or 415 refusing an
//! upload) ends the connection and says so (`Connection: close`, RFC 9112 §9.6). Without the
//! header hyper still closes such a connection when the unread rest has not arrived yet, but
//! after a response that promised keep-alive: the client's next request on it then meets a
//! closed socket (`RemoteDisconnected` in Python's clients).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

pub async fn close_if_unread(req: Request, next: Next) -> Response {
    if http_body::Body::is_end_stream(req.body()) {
        return next.run(req).await;
    }
    let ended = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| {
        Body::new(Watched {
            inner,
            ended: ended.clone(),
        })
    });
    let mut response = next.run(req).await;
    if !ended.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records when it has been read to its end.
struct Watched {
    inner: Body,
    ended: Arc<AtomicBool>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        // A body with a length is at its end once its last byte is read, before the `None`
        // that a reader which knows the length (a multipart parser) may never ask for.
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.ended.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::post;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Sends the head of a POST with a 4-byte body, then (after the response) the body, and
    /// returns the response head.
    async fn post_slowly(addr: std::net::SocketAddr, path: &str) -> String {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n");
        tcp.write_all(head.as_bytes()).await.unwrap();
        if path == "/reads" {
            tcp.write_all(b"abcd").await.unwrap();
        }
        let mut buf = vec![0; 4096];
        let n = tcp.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase()
    }

    #[tokio::test]
    async fn a_response_before_the_body_is_read_closes_the_connection_and_says_so() {
        let app = Router::new()
            .route(
                "/refuses",
                post(|| async { StatusCode::UNSUPPORTED_MEDIA_TYPE }),
            )
            .route("/reads", post(|body: Bytes| async move { body }))
            .layer(axum::middleware::from_fn(close_if_unread));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let refused = post_slowly(addr, "/refuses").await;
        assert!(refused.starts_with("http/1.1 415"), "{refused}");
        assert!(refused.contains("connection: close"), "{refused}");
        let read = post_slowly(addr, "/reads").await;
        assert!(read.starts_with("http/1.1 200"), "{read}");
        assert!(!read.contains("connection: close"), "{read}");
        assert!(read.ends_with("abcd"), "{read}");
    }
}
