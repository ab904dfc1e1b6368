//! `spawn_app`: the application built by the same code `main` uses, from settings given
//! here (never the process environment), served on 127.0.0.1.

use std::collections::HashMap;
use std::time::Duration;

use acs_sms_handler::acs::RetryPolicy;
use acs_sms_handler::config::Settings;
use acs_sms_handler::startup::Application;

use crate::common::{acs_vars, serve, MockAcs};

/// Retry limits with millisecond waits, so retry tests do not sleep.
pub const FAST_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    attempt_timeout: Duration::from_millis(500),
    budget: Duration::from_secs(5),
    base_delay: Duration::from_millis(2),
    max_delay: Duration::from_millis(10),
};

pub struct TestApp {
    pub base: String,
    pub acs: MockAcs,
    pub client: reqwest::Client,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Posts a host invocation to `/<function>`; the answer must be JSON, as the host reads it.
    pub async fn invoke(
        &self,
        function: &str,
        invocation: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(self.url(&format!("/{function}")))
            .json(invocation)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "invocation answers are JSON"
        );
        (status, response.json().await.unwrap())
    }
}

/// Settings from `vars` alone.
pub fn settings(vars: &[(&str, String)]) -> Settings {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let mut settings =
        Settings::from_lookup(|name| map.get(name).cloned()).expect("valid test settings");
    settings.retry.interactive = FAST_RETRY;
    settings.retry.background = FAST_RETRY;
    settings
}

/// Starts a mock ACS and the app pointed at it with an access key.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Like [`spawn_app`], with extra variables.
pub async fn spawn_app_with(extra: &[(&str, String)]) -> TestApp {
    start(MockAcs::start().await, extra).await
}

/// A second app instance in front of an existing mock ACS.
pub async fn spawn_app_for(acs: MockAcs) -> TestApp {
    start(acs, &[]).await
}

async fn start(acs: MockAcs, extra: &[(&str, String)]) -> TestApp {
    let mut vars = acs_vars(&acs.endpoint());
    vars.extend(extra.iter().cloned());
    let app = Application::build(settings(&vars)).expect("the app builds");
    let addr = serve(app.router()).await;
    TestApp {
        base: format!("http://{addr}"),
        acs,
        client: crate::common::client(),
    }
}
