//! The files we write and read besides the input: the one CSV dialect (every CSV reader and
//! writer is built in [`dialect`]), the one way a file is replaced ([`atomic`]), its MD5 taken
//! on a second core while it is written ([`digest`]), and how files are told apart and told
//! unchanged on every platform ([`identity`]).

pub(crate) mod atomic;
pub(crate) mod dialect;
pub(crate) mod digest;
pub(crate) mod identity;

pub(crate) use atomic::AtomicFile;
