//! The HTTP side: axum routes for the gateway path and the stats endpoint, and the delays
//! (latency, withheld answers) that end early when the server shuts down.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{any, get};
use tokio_util::sync::CancellationToken;

use super::answer::Reply;
use super::gateway::Sim;
use super::stats::SimStats;

/// The gateway path, as on the real platform.
pub(crate) const GATEWAY_PATH: &str = "/router/rest";

/// The counters endpoint.
pub(crate) const STATS_PATH: &str = "/sim/stats";

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

async fn gateway(
    State(app): State<App>,
    method: Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let allowed = method == Method::POST || method == Method::GET;
    let reply = app.sim.handle(allowed, query.as_deref(), &body);
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
