//! The HTTP side: binding and serving ([`start`], [`SimServer`]), the axum routes for the
//! gateway path and the stats endpoint, and the delays (latency, withheld answers) that end
//! early when the server shuts down. Each call is counted from when its bytes arrived (see
//! `arrival`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{any, get};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::answer::Reply;
use super::arrival::{Arrival, ArrivalListener};
use super::config::SimConfig;
use super::gateway::Sim;
use super::stats::SimStats;

/// The gateway path, as on the real platform.
pub(crate) const GATEWAY_PATH: &str = "/router/rest";

/// The counters endpoint.
pub(crate) const STATS_PATH: &str = "/sim/stats";

/// How long [`SimServer::shutdown`] waits for open connections before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running simulator. Dropping it stops the server; [`SimServer::shutdown`] also waits.
#[derive(Debug)]
pub struct SimServer {
    addr: SocketAddr,
    sim: Arc<Sim>,
    stopping: CancellationToken,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Binds `addr` (port 0 picks a free port) and serves the simulator in a spawned task.
/// Must be called within a tokio runtime.
pub async fn start(config: SimConfig, addr: SocketAddr) -> std::io::Result<SimServer> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim::new(config));
    let stopping = CancellationToken::new();
    let app = router(Arc::clone(&sim), stopping.clone());
    let listener = ArrivalListener::new(listener).await;
    let stop = stopping.clone().cancelled_owned();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<Arrival>(),
        )
        .with_graceful_shutdown(stop)
        .await
    });
    Ok(SimServer {
        addr,
        sim,
        stopping,
        task: Some(task),
    })
}

impl SimServer {
    /// The address the server got.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gateway URL, `http://ADDR/router/rest`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, GATEWAY_PATH)
    }

    /// The counters, as `GET /sim/stats` answers them.
    pub fn stats(&self) -> SimStats {
        self.sim.stats()
    }

    /// Restores the book saved at `path` by an earlier run (none there: nothing to restore).
    pub(crate) fn load_book(&self, path: &std::path::Path) -> anyhow::Result<()> {
        self.sim.restore_book(super::saved::load(path)?);
        Ok(())
    }

    /// Stops as [`SimServer::shutdown`] does, then saves the book to `path` (atomically) for
    /// the next run's [`SimServer::load_book`].
    pub(crate) async fn shutdown_saving(self, path: &std::path::Path) -> std::io::Result<()> {
        let sim = Arc::clone(&self.sim);
        self.shutdown().await;
        super::saved::save(path, &sim.saved_book())
    }

    /// Stops accepting, cuts pending delays short, and waits (bounded) for open connections.
    /// Returns the counters once no call is being handled any more: calls that were under way
    /// when the shutdown began are in them.
    pub async fn shutdown(mut self) -> SimStats {
        self.stopping.cancel();
        let Some(task) = self.task.take() else {
            return self.sim.stats();
        };
        let abort = task.abort_handle();
        match tokio::time::timeout(SHUTDOWN_GRACE, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!("simulator stopped with an error: {e}"),
            Ok(Err(e)) => tracing::warn!("simulator task failed: {e}"),
            Err(_) => {
                tracing::warn!("simulator connections still open after {SHUTDOWN_GRACE:?}");
                abort.abort();
            }
        }
        self.sim.stats()
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stopping.cancel();
    }
}

#[derive(Clone)]
struct App {
    sim: Arc<Sim>,
    stopping: CancellationToken,
}

/// The routes; `stopping` cuts every pending delay short.
pub(crate) fn router(sim: Arc<Sim>, stopping: CancellationToken) -> Router {
    Router::new()
        .route(GATEWAY_PATH, any(gateway))
        .route(STATS_PATH, get(stats))
        .with_state(App { sim, stopping })
}

/// The routes need the connection's [`Arrival`]: serve them through [`ArrivalListener`] with
/// `into_make_service_with_connect_info::<Arrival>()`.
async fn gateway(
    State(app): State<App>,
    ConnectInfo(arrival): ConnectInfo<Arrival>,
    method: Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let allowed = method == Method::POST || method == Method::GET;
    let reply = app
        .sim
        .handle(arrival.at(), allowed, query.as_deref(), &body);
    if !reply.delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(reply.delay) => {}
            () = app.stopping.cancelled() => {}
        }
    }
    into_response(reply)
}

async fn stats(State(app): State<App>) -> Json<SimStats> {
    Json(app.sim.stats())
}

fn into_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Body::from(reply.body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    response
}
