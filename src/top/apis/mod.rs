//! One file per issuing API: its [`ApiSpec`](super::ApiSpec) and how to read its success answer.

pub mod alsc;
pub mod tmall;
pub mod tmall_query;
