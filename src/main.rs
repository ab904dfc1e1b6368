//! The `handler` binary the Functions host starts: load settings, start telemetry and the
//! panic hook, serve.

use acs_sms_handler::{config::Settings, startup, telemetry};

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

    let port = settings.server.port;
    let listener = match startup::bind(&settings.server).await {
        Ok(listener) => listener,
        Err(error) => fail(&format!(
            "cannot listen on 127.0.0.1:{port} (FUNCTIONS_CUSTOMHANDLER_PORT): {error}"
        )),
    };
    let app = match startup::Application::build(settings) {
        Ok(app) => app,
        Err(error) => fail(&format!("cannot start: {error:#}")),
    };
    app.serve(listener, startup::shutdown_signal()).await?;
    Ok(())
}

/// Ends startup with one line on stderr and exit code 2.
fn fail(message: &str) -> ! {
    eprintln!("handler: {message}");
    std::process::exit(2);
}
