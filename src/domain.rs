//! Pure OAuth logic: no sockets, no files, no clock. Callers pass `now`.

pub mod assertion;
pub mod certificate;
pub mod client;
pub mod dpop;
pub mod endpoint;
pub mod error;
pub mod exchange;
pub mod scope;
pub mod token;
