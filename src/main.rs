//! The `handler` binary the Functions host starts: load settings, start telemetry and the
//! panic hook, serve.

use acs_sms_handler::{config::Settings, startup, telemetry};
use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("handler: configuration error: {error}");
            std::process::exit(2);
        }
    };
    telemetry::init(&settings.telemetry);
    telemetry::install_panic_hook();

    let listener = startup::bind(&settings.server)
        .await
        .context("could not bind the listener")?;
    let app = startup::Application::build(settings).context("could not start the handler")?;
    app.serve(listener, startup::shutdown_signal()).await?;
    Ok(())
}
