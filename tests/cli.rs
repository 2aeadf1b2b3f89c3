//! The integration tests, in one test crate (one link, one copy of the harness): the real
//! `campaign` binary driven in a clean environment against the simulator (`campaign sim` on
//! 127.0.0.1 port 0) or a tiny in-test server, and the library's client and simulator driven
//! in-process. Each area is a module of [`cases`].

mod cases;
