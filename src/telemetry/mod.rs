//! Operational logging (slog), Prometheus metrics and the request id that ties a request's log
//! lines and audit events together.

pub mod logging;
pub mod metrics;
pub mod request_id;
