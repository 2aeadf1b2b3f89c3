//! The files we write and read besides the input: the one CSV dialect (every CSV reader and
//! writer is built in [`dialect`]) and the one way a file is replaced ([`atomic`]).

pub mod atomic;
pub mod dialect;

pub use atomic::AtomicFile;
