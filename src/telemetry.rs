//! Log subscriber setup: JSON lines under the Functions host, compact text locally.
//!
//! With no `RUST_LOG` the handler logs at info and its dependencies at warn.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::TelemetrySettings;

/// The filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "warn,acs_sms_handler=info,handler=info";

/// Installs the global subscriber, writing to stdout (the host collects it).
pub fn init(settings: &TelemetrySettings) {
    let filter = if settings.filter == "info" {
        DEFAULT_FILTER
    } else {
        settings.filter.as_str()
    };
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = fmt().with_env_filter(filter).with_target(true);
    // A subscriber may already exist when tests start several apps in one process.
    if settings.json {
        let _ = builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init();
    } else {
        let _ = builder.compact().try_init();
    }
}
