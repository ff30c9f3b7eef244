//! The gateway's read-only HTTP endpoint (`[http] listen`): `/metrics` in
//! the Prometheus text format, `/` the status page, `/status.json` the
//! state `cairn status --json` prints. Only GET and HEAD; with a token
//! configured, every request must carry it (`Authorization: Bearer TOKEN`
//! or `?token=TOKEN`).

pub mod events;
mod metrics;
mod ops;
mod page;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

pub use ops::OpMetrics;

use crate::admin::Admin;

/// How long a client may take to send its request's headers.
const HEADERS_WITHIN: Duration = Duration::from_secs(10);

/// What the endpoint serves from.
pub struct Http {
    pub admin: Arc<Admin>,
    pub ops: OpMetrics,
    /// The token requests must carry, when one is configured.
    pub token: Option<String>,
}

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, http: Arc<Http>) {
    if let Ok(addr) = listener.local_addr() {
        info!(listen = %addr, token = http.token.is_some(), "HTTP endpoint serving /metrics and the status page");
    }
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!(cause = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let http = http.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let http = http.clone();
                async move { Ok::<_, Infallible>(http.answer(req).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADERS_WITHIN)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                debug!(cause = %e, "HTTP connection ended");
            }
        });
    }
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

const TEXT: &str = "text/plain; charset=utf-8";

/// Whether `a` and `b` are equal, in time that does not depend on where
/// they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Http {
    /// Whether `req` carries the token (always, without one).
    fn allowed(&self, req: &Request<Incoming>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let bearer = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let query = req
            .uri()
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|kv| kv.strip_prefix("token="));
        [bearer, query]
            .into_iter()
            .flatten()
            .any(|given| same(given.trim().as_bytes(), token.as_bytes()))
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            let mut r = reply(
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                "read-only: GET or HEAD\n",
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        if !self.allowed(&req) {
            let mut r = reply(
                StatusCode::UNAUTHORIZED,
                TEXT,
                "a token is required: Authorization: Bearer TOKEN, or ?token=TOKEN\n",
            );
            r.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        let path = req.uri().path();
        if !matches!(path, "/" | "/metrics" | "/status.json") {
            return reply(
                StatusCode::NOT_FOUND,
                TEXT,
                "not found: try /, /metrics or /status.json\n",
            );
        }
        let status = match self.admin.status().await {
            Ok(s) => s,
            Err(e) => {
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    format!("no status: {e}\n"),
                );
            }
        };
        match path {
            "/metrics" => reply(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                metrics::render(&status, &self.ops, self.admin.fs.cache_counters()),
            ),
            "/status.json" => match serde_json::to_vec(&status) {
                Ok(json) => reply(StatusCode::OK, "application/json", json),
                Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("{e}\n")),
            },
            _ => reply(
                StatusCode::OK,
                "text/html; charset=utf-8",
                page::render(&status, &events::recent()),
            ),
        }
    }
}
