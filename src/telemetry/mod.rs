//! Operational logging (slog) and Prometheus metrics.

pub mod logging;
pub mod metrics;
