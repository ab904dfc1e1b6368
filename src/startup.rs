//! Wiring: shared state, the router with its limits, serving and shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use tokio::net::TcpListener;
use tower::limit::ConcurrencyLimitLayer;
use tracing::Instrument;

use crate::acs::{AcsClients, IdentityClient, SmsClient};
use crate::config::{AcsSettings, RetrySettings, ServerSettings, Settings, SmsSettings};
use crate::error::ApiError;
use crate::idempotency::{IdempotencyStore, SendLedger};
use crate::routes;

/// The header the Functions host puts on every request it sends.
pub const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";

/// Largest invocation body: a batch body at its limit, JSON-encoded once more by the host.
const INVOCATION_BODY_LIMIT: usize = 3 * crate::routes::batches::BATCH_BODY_LIMIT;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub sms: Arc<SmsSettings>,
    pub sms_client: SmsClient,
    pub identity_client: IdentityClient,
    pub idempotency: Arc<IdempotencyStore>,
    pub ledger: Arc<SendLedger>,
    pub retry: RetrySettings,
    pub request_timeout: Duration,
}

/// A built application, ready to serve.
#[derive(Debug)]
pub struct Application {
    router: Router,
    description: String,
    outbox: bool,
    /// Longest wait for in-flight requests after a shutdown signal.
    drain_limit: Duration,
}

impl Application {
    /// Builds the clients and the router. Makes no network call.
    ///
    /// # Errors
    /// When the HTTP client or the credential cannot be built.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let client = crate::acs::http_client()?;
        let clients = AcsClients::build(&settings.acs, &client)?;
        let outbox = matches!(clients.sms, SmsClient::Outbox(_));
        if let AcsSettings::Outbox { path } = &settings.acs {
            check_outbox_path(path)?;
        }
        let state = AppState {
            sms: Arc::new(settings.sms),
            sms_client: clients.sms,
            identity_client: clients.identity,
            idempotency: Arc::default(),
            ledger: Arc::default(),
            retry: settings.retry,
            request_timeout: settings.server.request_timeout,
        };
        Ok(Self {
            router: router(state, &settings.server),
            description: clients.description,
            outbox,
            drain_limit: settings.server.request_timeout + settings.server.drain_grace,
        })
    }

    /// The router, for tests that call it without a socket.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves on `listener` until `shutdown` completes, then lets in-flight requests finish.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let port = listener.local_addr()?.port();
        if self.outbox {
            tracing::warn!(target: "handler", "LOCAL OUTBOX: nothing is really sent. Would-be ACS requests are appended to the outbox file.");
        }
        tracing::info!(target: "handler", port, backend = %self.description, "handler listening on 127.0.0.1");
        let limit = self.drain_limit;
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        };
        let server = axum::serve(listener, self.router).with_graceful_shutdown(signal);
        // A connection that stalls mid-request must not keep the process alive forever.
        let drain_limit = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(limit).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            served = server => {
                served?;
                tracing::info!(target: "handler", "handler stopped; in-flight requests finished");
            }
            () = drain_limit => {
                tracing::warn!(target: "handler", limit_s = limit.as_secs(), "handler stopped at the drain limit; connections still open were closed");
            }
        }
        Ok(())
    }
}

/// Opens the outbox file for appending once, so an unusable path stops startup.
fn check_outbox_path(path: &std::path::Path) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
        .map_err(|error| {
            anyhow::anyhow!(
                "{}: the local outbox file cannot be opened for appending ({})",
                crate::config::SMS_OUTBOX_PATH,
                error.kind()
            )
        })
}

/// Binds 127.0.0.1 at the configured port, before anything else happens, so the host's
/// readiness probe is answered at once.
///
/// # Errors
/// When the port cannot be bound.
pub async fn bind(server: &ServerSettings) -> std::io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", server.port)).await
}

/// Builds the router with every route and its limits.
pub fn router(state: AppState, server: &ServerSettings) -> Router {
    let observed = Router::new()
        .route("/api/sms", post(routes::sms::send_sms))
        .route(
            "/EnqueueSmsBatch",
            post(routes::batches::enqueue_sms_batch)
                .layer(DefaultBodyLimit::max(INVOCATION_BODY_LIMIT)),
        )
        .route(
            "/SendSmsFromQueue",
            post(routes::queue::send_sms_from_queue)
                .layer(DefaultBodyLimit::max(INVOCATION_BODY_LIMIT)),
        )
        .route("/api/identities", post(routes::identities::create_identity))
        .route(
            "/api/identities/{id}",
            delete(routes::identities::delete_identity),
        )
        .route(
            "/api/identities/{id}/token",
            post(routes::identities::issue_token),
        )
        .route(
            "/api/identities/{id}/revoke",
            post(routes::identities::revoke_tokens),
        )
        .route(
            "/api/teams/token",
            post(routes::identities::exchange_teams_token),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), observe));
    Router::new()
        .route("/", get(routes::health::health))
        .merge(observed)
        .fallback(|method: Method| async move { unrouted(&method, ApiError::NotFound("route")) })
        .method_not_allowed_fallback(|method: Method| async move {
            unrouted(&method, ApiError::MethodNotAllowed)
        })
        .layer(ConcurrencyLimitLayer::new(server.max_concurrent_requests))
        .with_state(state)
}

/// Answers a request no route took, with the one log line every request gets.
fn unrouted(method: &Method, error: ApiError) -> Response {
    let response = error.into_response();
    tracing::info!(method = %method, route = "unmatched", status = response.status().as_u16(), "request finished");
    response
}

/// One span per request (method, route template, invocation id), a time limit, and one
/// log line with the outcome. The raw path and query are never logged: a query may hold a
/// function key.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let invocation_id = request
        .headers()
        .get(INVOCATION_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| value.len() <= 64)
        .map(str::to_owned);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route,
        invocation_id = invocation_id.as_deref(),
    );
    let started = Instant::now();
    let response = match tokio::time::timeout(state.request_timeout, next.run(request))
        .instrument(span.clone())
        .await
    {
        Ok(response) => response,
        Err(_) => span.in_scope(|| ApiError::Timeout.into_response()),
    };
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "request finished"
        );
    });
    response
}

/// Completes on Ctrl-C or SIGTERM (the platform stops instances with SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!(target: "handler", "shutdown requested; draining in-flight requests");
}
