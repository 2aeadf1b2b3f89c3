//! The TOP wire protocol: signing, common parameters, the issuing APIs and their read APIs as
//! data, response parsing, outcome classification and the HTTP client.

pub mod api;
pub mod apis;
mod body;
pub mod client;
pub mod gateway;
pub mod outcome;
pub mod params;
pub mod query;
pub mod response;
pub(crate) mod scrub;
pub mod sign;

pub use api::{APIS, ApiSpec, FieldKind, FieldSpec, find_api};
pub use body::OnWrite;
pub use client::{Attempt, Client, ClientConfig, ClientError};
pub use gateway::Gateway;
pub use outcome::{Outcome, OutcomeClass, PlatformError, classify_error};
pub use params::Credentials;
pub use query::{Certificate, Page, QuerySpec};
pub use response::{Parsed, parse_response};
pub(crate) use scrub::Scrubber;
pub use sign::SignMethod;
