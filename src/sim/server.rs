//! The HTTP side: binding and serving ([`start`], [`SimServer`]), the axum routes for the
//! gateway path and the stats endpoint, and the delays (latency, withheld answers) that end
//! early when the server shuts down, and the file its book is kept in ([`BookFile`]). Each call is counted from when its bytes arrived (see
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
    /// Where the book is kept, once [`SimServer::keep_book`] was called.
    book: Option<Arc<BookFile>>,
}

/// The file a simulator's book is kept in, saved when the book changed since it was loaded or
/// last saved. Shared with whatever must save it from outside the server (a hard quit).
#[derive(Debug)]
pub(crate) struct BookFile {
    sim: Arc<Sim>,
    path: std::path::PathBuf,
    /// The book's change count when it was last loaded or saved; held while saving, so two
    /// saves never interleave.
    saved_at: std::sync::Mutex<u64>,
}

impl BookFile {
    /// Saves the book (atomically) if it changed since it was loaded or last saved; a failure
    /// is logged with the file's name. Returns whether the file holds the book now.
    pub(crate) fn save(&self) -> bool {
        let mut saved_at = self
            .saved_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changes = self.sim.book_changes();
        if changes == *saved_at {
            return true;
        }
        match super::saved::save(&self.path, &self.sim.saved_book()) {
            Ok(()) => {
                *saved_at = changes;
                true
            }
            Err(e) => {
                tracing::warn!(
                    "cannot save the simulator's book {}: {e}",
                    self.path.display()
                );
                false
            }
        }
    }

    /// The file.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }
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
        book: None,
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

    /// Restores the book saved at `path` by an earlier start (none there: an empty book) and
    /// keeps it there from now on: [`SimServer::shutdown`] and dropping the server save it when
    /// it changed, whatever way the command ends (only a `kill -9` loses it).
    pub(crate) fn keep_book(&mut self, path: &std::path::Path) -> anyhow::Result<Arc<BookFile>> {
        self.sim.restore_book(super::saved::load(path)?);
        let book = Arc::new(BookFile {
            sim: Arc::clone(&self.sim),
            path: path.to_owned(),
            saved_at: std::sync::Mutex::new(self.sim.book_changes()),
        });
        self.book = Some(Arc::clone(&book));
        Ok(book)
    }

    /// The file the book is kept in, if any.
    pub(crate) fn book(&self) -> Option<Arc<BookFile>> {
        self.book.clone()
    }

    /// Stops accepting, cuts pending delays short, and waits (bounded) for open connections.
    /// Returns the counters once no call is being handled any more: calls that were under way
    /// when the shutdown began are in them, and none is issued after (see [`Sim::close`]).
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
        // Aborting the server leaves its connections' tasks running: close the books before
        // counting, so that no call is issued after the counters are taken.
        self.sim.close();
        if let Some(book) = self.book.take() {
            book.save();
        }
        self.sim.stats()
    }
}

impl Drop for SimServer {
    /// Stops the server and, if it keeps a book, saves it: a command that ends through an
    /// error still leaves what the simulator issued for the next start.
    fn drop(&mut self) {
        self.stopping.cancel();
        self.sim.close();
        if let Some(book) = self.book.take() {
            book.save();
        }
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::top::SignMethod;
    use crate::top::params::{Credentials, signed_form, timestamp_now};

    /// Issues one tmall certificate to `open_id` on `server`'s simulator.
    fn issue(server: &SimServer, open_id: &str) {
        let creds = Credentials {
            app_key: "10000001",
            secret: "sim-secret",
            session: Some("sim-session"),
            sign_method: SignMethod::HmacSha256,
        };
        let object = format!(r#"{{"channel":7,"open_id":"{open_id}","out_id":1,"biz_code":"23"}}"#);
        let form = signed_form(
            "tmall.nrt.certificate.send",
            ("nrt_certificate_send_d_t_o", &object),
            &creds,
            &timestamp_now(),
        );
        let body = serde_urlencoded::to_string(form).unwrap();
        let reply = server
            .sim
            .handle(Instant::now(), true, None, body.as_bytes());
        assert!(reply.body.contains("certificate"), "{}", reply.body);
    }

    async fn server() -> SimServer {
        start(SimConfig::default(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_dropped_server_saves_its_changed_book_and_an_unchanged_one_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("book.json");

        let mut idle = server().await;
        idle.keep_book(&path).unwrap();
        drop(idle);
        assert!(!path.exists(), "nothing issued, nothing written");

        // Dropped without a shutdown, as on an error path.
        let mut first = server().await;
        first.keep_book(&path).unwrap();
        issue(&first, "A");
        issue(&first, "B");
        drop(first);

        let mut second = server().await;
        second.keep_book(&path).unwrap();
        assert_eq!((second.stats().issued, second.stats().duplicates), (2, 0));
        issue(&second, "A");
        let stats = second.shutdown().await;
        assert_eq!((stats.issued, stats.duplicates), (3, 1));
        let saved = crate::sim::saved::load(&path).unwrap();
        assert_eq!((saved.issued, saved.duplicates), (3, 1));
        assert_eq!(saved.certificates.len(), 3);
    }

    #[tokio::test]
    async fn a_save_through_the_shared_book_file_leaves_the_server_nothing_to_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("book.json");
        let mut server = server().await;
        let book = server.keep_book(&path).unwrap();
        issue(&server, "A");
        assert!(book.save());
        assert_eq!(crate::sim::saved::load(&path).unwrap().issued, 1);
        // Saved already: the server's own save has nothing left to write.
        std::fs::remove_file(&path).unwrap();
        drop(server);
        assert!(!path.exists());
    }
}
