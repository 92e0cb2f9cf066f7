//! The audit layer every HTTP service shares: one record per request (schema: docs/audit.md,
//! [`hds_auth::audit`]), to the service's audit log and, when the service asks, to a queue of
//! its own (the FHIR service keeps them as AuditEvents).
//!
//! The layer goes outside everything else, so refused, unknown and failed requests are recorded
//! too. A service says what a request is about ([`Audited::describe`]) before it runs; who
//! called and which data action was needed come back on the response's extensions, where its
//! authentication leaves a [`Caller`] and a [`DataAction`].

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use hds_auth::audit::{AuditLog, AuditRecord, ServiceRef, What, Where, Who};
use hds_auth::{DataAction, Principal};
use tokio::sync::mpsc;

/// The caller authentication accepted, left on the response for the audit layer.
#[derive(Clone)]
pub struct Caller(pub Principal);

/// Where one service's records go.
pub struct Auditor {
    service: ServiceRef,
    log: AuditLog,
    /// A second sink, by name (for `hds_audit_failures_total`), fed without waiting.
    forward: Option<(&'static str, mpsc::Sender<AuditRecord>)>,
}

impl Auditor {
    /// Opens the log `audit.log` names (`stdout`, `stderr`, `off` or a file). One that cannot be
    /// opened falls back to stderr, loudly: runners call [`check`] first, and a service that
    /// starts anyway must not lose its records.
    pub fn open(service: ServiceRef, log: &str) -> Self {
        let log = AuditLog::open(log).unwrap_or_else(|e| {
            tracing::error!(service = %service.name, log = %log, "cannot open the audit log ({e}); audit records go to stderr");
            AuditLog::Stderr
        });
        Self {
            service,
            log,
            forward: None,
        }
    }

    /// Also hands every record to `tx`; a full or closed queue counts as a failure of `sink`.
    pub fn forward_to(mut self, sink: &'static str, tx: mpsc::Sender<AuditRecord>) -> Self {
        self.forward = Some((sink, tx));
        self
    }

    /// Whether anything reads records: a log other than `off`, or a second sink.
    fn records(&self) -> bool {
        !matches!(self.log, AuditLog::Off) || self.forward.is_some()
    }

    fn submit(&self, record: AuditRecord) {
        self.log.write(&record);
        if let Some((sink, tx)) = &self.forward
            && tx.try_send(record).is_err()
        {
            hds_auth::audit::failed(sink, "the queue is full or closed");
        }
    }
}

/// Checks that an audit log can be opened, before the service starts.
pub fn check(log: &str) -> Result<(), String> {
    AuditLog::open(log)
        .map(drop)
        .map_err(|e| format!("audit.log '{log}' cannot be opened: {e}"))
}

/// A service's state, as the audit layer needs it.
pub trait Audited: Clone + Send + Sync + 'static {
    fn auditor(&self) -> &Auditor;
    /// Fills in what the request names: `path` (below the service's base URL) and whatever the
    /// service's routes say (a resource, DICOM UIDs, ...). Method and query are set already.
    fn describe(&self, req: &Request, what: &mut What);
}

/// The middleware: `middleware::from_fn_with_state(state, audit::record::<State>)`.
pub async fn record<S: Audited>(State(s): State<S>, req: Request, next: Next) -> Response {
    let id = request_id(&req);
    // With the log off and no second sink nothing reads a record: only the request id is due.
    if !s.auditor().records() {
        let mut resp = next.run(req).await;
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        return resp;
    }
    let start = Instant::now();
    let mut record = AuditRecord::new(s.auditor().service.clone(), id);
    record.what.method = req.method().as_str().to_owned();
    record.what.query = req.uri().query().map(str::to_owned);
    s.describe(&req, &mut record.what);
    record.where_ = where_of(&req);
    let mut resp = next.run(req).await;
    record.outcome.status = resp.status().as_u16();
    record.outcome.duration_ms = (start.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    record.who = resp
        .extensions_mut()
        .remove::<Caller>()
        .map(|c| Who::from(&c.0));
    record.what.action = resp
        .extensions_mut()
        .remove::<DataAction>()
        .map(|a| a.as_str().to_owned());
    if let Ok(v) = HeaderValue::from_str(&record.request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    s.auditor().submit(record);
    resp
}

/// Where the request came from: the peer, and what its headers claim.
fn where_of(req: &Request) -> Where {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Where {
        source_ip: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
        forwarded_for: header("x-forwarded-for"),
        user_agent: header(header::USER_AGENT.as_str()),
    }
}

/// The client's `X-Request-Id` (up to 200 characters), else a new UUID.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// A request path below a service's mount point (`/fhir/<name>`, `/dicom/<name>` under
/// `hds up`): nested, a router may see it with or without the prefix. Never empty.
pub fn below<'p>(prefix: &str, path: &'p str) -> &'p str {
    match path.strip_prefix(prefix).unwrap_or(path) {
        "" => "/",
        p => p,
    }
}
