//! The files we write and read besides the input: the one CSV dialect (every CSV reader and
//! writer is built in [`dialect`]), the one way a file is replaced ([`atomic`]), and how files
//! are told apart and told unchanged on every platform ([`identity`]).

pub mod atomic;
pub mod dialect;
pub mod identity;

pub use atomic::AtomicFile;
