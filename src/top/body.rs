//! A request body that tells when it is written: the HTTP connection polls a body at the moment
//! it writes the request out, so the first poll is the closest the program can see to the
//! request leaving for the gateway. The pacer's one-second window counts from that moment.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// What to run when the request is written.
pub type OnWrite = Box<dyn FnOnce() + Send + Sync>;

/// A whole form in one frame, with `on_write` run on the first poll.
pub(crate) struct StampedBody {
    data: Option<Bytes>,
    len: u64,
    on_write: Option<OnWrite>,
}

impl StampedBody {
    pub(crate) fn new(data: String, on_write: OnWrite) -> StampedBody {
        StampedBody {
            len: data.len() as u64,
            data: Some(Bytes::from(data)),
            on_write: Some(on_write),
        }
    }
}

impl Body for StampedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(on_write) = self.on_write.take() {
            on_write();
        }
        Poll::Ready(self.data.take().map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // Exact, so the request carries a Content-Length like a plain body does.
        SizeHint::with_exact(if self.data.is_some() { self.len } else { 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn the_first_poll_runs_the_stamp_and_yields_the_form() {
        let stamped = Arc::new(AtomicBool::new(false));
        let flag = stamped.clone();
        let body = StampedBody::new(
            "a=1&b=2".to_owned(),
            Box::new(move || flag.store(true, Ordering::SeqCst)),
        );
        assert_eq!(body.size_hint().exact(), Some(7));
        assert!(!stamped.load(Ordering::SeqCst));
        let mut body = std::pin::pin!(body);
        let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
        let data = frame.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&data[..], b"a=1&b=2");
        assert!(stamped.load(Ordering::SeqCst));
        assert!(body.is_end_stream());
    }
}
