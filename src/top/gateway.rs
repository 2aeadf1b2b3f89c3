//! The seam between the runner and the platform: a [`Gateway`] prepares a call and sends it,
//! answering with the classified [`Attempt`]. The HTTP [`Client`] is the real one; the runner's
//! unit tests use a scripted one, so the retry, throttle, halt and failure-rate rules are tested
//! without HTTP.

use std::future::Future;

use super::body::OnWrite;
use super::client::{Attempt, Client, PreparedRequest};

/// Where the runner sends its calls.
pub trait Gateway: Send + Sync + 'static {
    /// A call made ready to go (signed and encoded for the HTTP client).
    type Request: Send;

    /// Makes the call for one row's object param (`payload`, serialised JSON) ready, so that the
    /// work is done before the row's rate-limit slot and the send follows the slot closely.
    fn prepare(&self, payload: &str) -> Self::Request;

    /// Sends a prepared call and classifies what came back (or did not). `on_write` runs at the
    /// moment the call is handed to the connection (the pacer's window counts from then); a
    /// call that is never written may never run it.
    fn send(
        &self,
        request: Self::Request,
        on_write: OnWrite,
    ) -> impl Future<Output = Attempt> + Send;

    /// Whether the gateway answers at all (during an outage), without issuing anything.
    fn probe(&self) -> impl Future<Output = bool> + Send;
}

impl Gateway for Client {
    type Request = PreparedRequest;

    fn prepare(&self, payload: &str) -> PreparedRequest {
        Client::prepare(self, payload)
    }

    fn send(
        &self,
        request: PreparedRequest,
        on_write: OnWrite,
    ) -> impl Future<Output = Attempt> + Send {
        self.send_stamped(request, on_write)
    }

    fn probe(&self) -> impl Future<Output = bool> + Send {
        Client::probe(self)
    }
}
