//! Log subscriber setup: JSON lines under the Functions host, compact text locally, and a
//! panic hook that logs where a panic happened but never its message.
//!
//! With no `RUST_LOG` the handler logs at info and its dependencies at warn.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::TelemetrySettings;

/// The filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "warn,acs_sms_handler=info,handler=info";

/// A subscriber with the handler's filter and format, writing to `writer`; tests pass a
/// buffer to read what would be logged.
pub fn subscriber<W>(
    settings: &TelemetrySettings,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = if settings.filter == "info" {
        DEFAULT_FILTER
    } else {
        settings.filter.as_str()
    };
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(settings.ansi)
        .with_writer(writer);
    if settings.json {
        Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        )
    } else {
        Box::new(builder.compact().finish())
    }
}

/// Installs the global subscriber, writing to stdout (the host collects it).
pub fn init(settings: &TelemetrySettings) {
    // A subscriber may already exist when tests start several apps in one process.
    let _ = subscriber(settings, std::io::stdout).try_init();
}

/// Replaces the default panic output with one error event that names the panic's location.
///
/// The panic message is left out: it is built from whatever values the panicking code had
/// at hand, which may be a phone number, a message text or a token.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map_or_else(
            || "unknown".to_owned(),
            |at| format!("{}:{}:{}", at.file(), at.line(), at.column()),
        );
        tracing::error!(
            target: "handler",
            location = %location,
            "the handler panicked; the panic message is not logged because it may hold personal data"
        );
    }));
}
