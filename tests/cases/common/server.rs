//! A tiny HTTP/1.1 server on 127.0.0.1:0 for what the simulator cannot answer: a gateway with
//! a fixed or hostile answer, a webhook receiver. It answers each request with what the test's
//! closure returns and counts the requests it read.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One request as the test server read it.
pub struct Request {
    /// The request line and the headers.
    pub head: String,
    pub body: Vec<u8>,
}

impl Request {
    /// The path and query of the request line, e.g. `/robot/send?access_token=t`.
    pub fn target(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }
}

/// A server that answers every request with the whole raw HTTP response its closure returns
/// (or, given `None`, holds the connection open and never answers), one thread a connection.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    /// `http://<addr>/router/rest`.
    pub url: String,
    hits: Arc<AtomicUsize>,
}

impl TestServer {
    pub fn start(reply: impl Fn(&Request) -> Option<String> + Send + Sync + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let reply = Arc::new(reply);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (reply, counted) = (reply.clone(), counted.clone());
                std::thread::spawn(move || {
                    let Some(request) = read_request(&stream) else {
                        return;
                    };
                    counted.fetch_add(1, Ordering::SeqCst);
                    match reply(&request) {
                        Some(answer) => {
                            let _ = (&stream).write_all(answer.as_bytes());
                        }
                        // Held until the test process ends: the client must give up by itself.
                        None => loop {
                            std::thread::park();
                        },
                    }
                });
            }
        });
        TestServer {
            addr,
            url: format!("http://{addr}/router/rest"),
            hits,
        }
    }

    /// A server that answers every request with `body` as JSON (HTTP 200).
    pub fn json(body: &'static str) -> TestServer {
        TestServer::start(move |_| Some(json(body)))
    }

    /// How many whole requests it read.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { head, body })
}

/// A raw HTTP response that closes the connection.
pub fn response(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A raw HTTP 200 response with a JSON body.
pub fn json(body: &str) -> String {
    response("200 OK", "content-type: application/json\r\n", body)
}
