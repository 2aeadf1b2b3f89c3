//! When a request arrived: the accepted connections ([`ArrivalListener`], [`StampedStream`]) note
//! the moment each request's first bytes reached the simulator's socket, and the handler counts
//! the call from that moment ([`Arrival::at`]), not from when it got round to running.
//!
//! On Linux the moment is the kernel's receive timestamp (`SO_TIMESTAMPNS`): when the bytes were
//! queued on the socket, which on loopback is when the client's write put them there. Neither the
//! simulator's task scheduling nor its process waiting for a CPU on a loaded machine moves it, so
//! the one-second windows of `peak_calls_per_second` and `--limit-qps` hold what the wire held.
//! Elsewhere (or if the kernel gives no timestamp) it is when the read returned, which is as late
//! as the process was scheduled.
//!
//! HTTP/1.1 without pipelining sends a request only after the previous answer, so the first read
//! since the connection last wrote is the next request's first bytes. Pipelined requests read in
//! one go share that read's moment, which is when they arrived.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Accepts connections whose reads stamp the arrival of each request.
pub(crate) struct ArrivalListener {
    inner: TcpListener,
}

impl ArrivalListener {
    /// Turns the kernel's receive timestamps on for every connection the listener will accept
    /// (they inherit it), and returns once the kernel stamps: it starts doing so a moment after
    /// the first socket of the system asks (the change is deferred to a kernel worker), and the
    /// first requests must not fall back to the later moment of their read.
    pub(crate) async fn new(inner: TcpListener) -> ArrivalListener {
        #[cfg(target_os = "linux")]
        {
            enable_timestamps(&inner);
            if !kernel_stamps_loopback().await {
                tracing::debug!("no kernel receive timestamps: arrivals are stamped when read");
            }
        }
        ArrivalListener { inner }
    }
}

/// Asks for `SO_TIMESTAMPNS` on a socket; without it every stamp is the read's own moment, as on
/// other systems.
#[cfg(target_os = "linux")]
fn enable_timestamps(socket: &impl std::os::fd::AsFd) {
    use nix::sys::socket::{setsockopt, sockopt::ReceiveTimestampns};
    let _ = setsockopt(socket, ReceiveTimestampns, &true);
}

/// Whether the kernel stamps what a loopback connection receives, waiting up to about a second
/// for it to start: one byte at a time over a throwaway connection until one comes stamped.
#[cfg(target_os = "linux")]
async fn kernel_stamps_loopback() -> bool {
    use std::net::Ipv4Addr;

    use tokio::io::AsyncWriteExt as _;

    const TRIES: u32 = 1_000;
    let Ok(probe) = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await else {
        return false;
    };
    let Ok(addr) = probe.local_addr() else {
        return false;
    };
    let (Ok(mut client), Ok((server, _))) = tokio::join!(TcpStream::connect(addr), probe.accept())
    else {
        return false;
    };
    enable_timestamps(&server);
    let mut server = StampedStream::new(server);
    let mut byte = [0u8; 1];
    for _ in 0..TRIES {
        if client.write_all(b"?").await.is_err() {
            return false;
        }
        let stamped = loop {
            if server.tcp.readable().await.is_err() {
                return false;
            }
            match server.recv(&mut byte) {
                Ok((1, stamp)) => break stamp.is_some(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                _ => return false,
            }
        };
        if stamped {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    false
}

impl Listener for ArrivalListener {
    type Io = StampedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (StampedStream, SocketAddr) {
        let (tcp, addr) = Listener::accept(&mut self.inner).await;
        // Small answers must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        (StampedStream::new(tcp), addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// One connection's arrival clock, shared between its stream and the handlers of its requests
/// (as their connect info).
#[derive(Clone, Debug)]
pub(crate) struct Arrival(Arc<Mutex<Mark>>);

#[derive(Debug)]
struct Mark {
    /// The first bytes read since the connection last wrote: the current request's arrival.
    at: Option<Instant>,
    /// The connection wrote since `at` was set: the next read starts a new request.
    answered: bool,
}

impl Arrival {
    fn new() -> Arrival {
        Arrival(Arc::new(Mutex::new(Mark {
            at: None,
            answered: true,
        })))
    }

    fn mark(&self) -> std::sync::MutexGuard<'_, Mark> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the current request's first bytes arrived (now, if the connection never read).
    pub(crate) fn at(&self) -> Instant {
        self.mark().at.unwrap_or_else(Instant::now)
    }

    fn read(&self, at: impl FnOnce() -> Instant) {
        let mut mark = self.mark();
        if mark.answered {
            mark.at = Some(at());
            mark.answered = false;
        }
    }

    fn wrote(&self) {
        self.mark().answered = true;
    }
}

impl Connected<IncomingStream<'_, ArrivalListener>> for Arrival {
    fn connect_info(stream: IncomingStream<'_, ArrivalListener>) -> Arrival {
        stream.io().arrival.clone()
    }
}

/// An accepted connection that notes when each request's first bytes arrived.
pub(crate) struct StampedStream {
    tcp: TcpStream,
    arrival: Arrival,
    #[cfg(target_os = "linux")]
    control: Vec<u8>,
}

impl StampedStream {
    fn new(tcp: TcpStream) -> StampedStream {
        // Accepted sockets inherit it from the listener; asking again costs nothing.
        #[cfg(target_os = "linux")]
        enable_timestamps(&tcp);
        StampedStream {
            tcp,
            arrival: Arrival::new(),
            #[cfg(target_os = "linux")]
            control: nix::cmsg_space!(nix::sys::time::TimeSpec),
        }
    }
}

#[cfg(target_os = "linux")]
impl StampedStream {
    /// One `recvmsg`: the bytes read and the kernel's receive timestamp of the last of them.
    fn recv(&mut self, into: &mut [u8]) -> io::Result<(usize, Option<Instant>)> {
        use std::os::fd::AsRawFd as _;

        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

        let fd = self.tcp.as_raw_fd();
        let control = &mut self.control;
        self.tcp.try_io(tokio::io::Interest::READABLE, || {
            let mut iov = [io::IoSliceMut::new(into)];
            let msg = recvmsg::<()>(fd, &mut iov, Some(control), MsgFlags::MSG_DONTWAIT)?;
            let stamp = msg
                .cmsgs()
                .ok()
                .into_iter()
                .flatten()
                .find_map(|c| match c {
                    ControlMessageOwned::ScmTimestampns(ts) => Some(since_epoch(ts)),
                    _ => None,
                });
            Ok((msg.bytes, stamp.map(wall_to_instant)))
        })
    }
}

/// A kernel timestamp (`CLOCK_REALTIME`) as a time since the Unix epoch.
#[cfg(target_os = "linux")]
fn since_epoch(ts: nix::sys::time::TimeSpec) -> std::time::Duration {
    std::time::Duration::new(
        u64::try_from(ts.tv_sec()).unwrap_or(0),
        u32::try_from(ts.tv_nsec()).unwrap_or(0),
    )
}

/// The monotonic instant of a wall-clock moment in the recent past (no later than now; a wall
/// clock stepped in between gives now).
#[cfg(target_os = "linux")]
fn wall_to_instant(since_epoch: std::time::Duration) -> Instant {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    // Read the two clocks as close together as this thread manages (it may be preempted
    // between two reads): of three tries, the one whose wall-clock reads are nearest.
    let (now, wall_now) = (0..3)
        .map(|_| {
            let before = SystemTime::now();
            let now = Instant::now();
            let after = SystemTime::now();
            let spread = after.duration_since(before).unwrap_or_default();
            (spread, now, before + spread / 2)
        })
        .min_by_key(|(spread, ..)| *spread)
        .map(|(_, now, wall)| (now, wall))
        .expect("three tries");
    match wall_now.duration_since(UNIX_EPOCH + since_epoch) {
        Ok(ago) if ago < Duration::from_secs(60) => now.checked_sub(ago).unwrap_or(now),
        _ => now,
    }
}

impl AsyncRead for StampedStream {
    #[cfg(target_os = "linux")]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            std::task::ready!(this.tcp.poll_read_ready(cx))?;
            match this.recv(buf.initialize_unfilled()) {
                Ok((read, stamp)) => {
                    buf.advance(read);
                    if read > 0 {
                        this.arrival.read(|| stamp.unwrap_or_else(Instant::now));
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.arrival.read(Instant::now);
        }
        polled
    }
}

impl AsyncWrite for StampedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.arrival.wrote();
        Pin::new(&mut this.tcp).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.arrival.wrote();
        Pin::new(&mut this.tcp).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[test]
    fn a_request_arrives_at_its_first_read_after_the_last_answer() {
        let arrival = Arrival::new();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        arrival.read(|| at(10));
        // The rest of the same request (its body, say) does not move it.
        arrival.read(|| at(30));
        assert_eq!(arrival.at(), at(10));
        // Once answered, the next bytes are the next request.
        arrival.wrote();
        assert_eq!(arrival.at(), at(10));
        arrival.read(|| at(500));
        assert_eq!(arrival.at(), at(500));
    }

    /// The stamp is when the bytes reached the socket, not when the simulator got round to
    /// reading them: here the read comes well after they were there.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_stamp_is_the_kernels_not_the_reads() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut listener = ArrivalListener::new(tcp).await;
        let addr = Listener::local_addr(&listener).unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = Listener::accept(&mut listener).await;
        for request in [
            &b"GET /one HTTP/1.1\r\n\r\n"[..],
            b"GET /two HTTP/1.1\r\n\r\n",
        ] {
            let sent = Instant::now();
            client.write_all(request).await.unwrap();
            server.tcp.readable().await.unwrap();
            let there = Instant::now();
            let mut buf = [0u8; 64];
            let read = server.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..read], request);
            let at = server.arrival.at();
            assert!(sent <= at && at <= there, "{sent:?} {at:?} {there:?}");
            server
                .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .unwrap();
        }
    }
}
