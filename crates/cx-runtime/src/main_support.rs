//! The thin `main` every service binary shares: config from the environment
//! (exit 64 when it is bad), logs, a small tokio runtime, run until SIGTERM.

use std::collections::HashMap;
use std::future::Future;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, ServiceName};
use crate::server::StartError;
use crate::{shutdown, telemetry};

/// Exit code for a configuration error (sysexits EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

pub fn run<F, Fut>(service: ServiceName, start: F) -> ExitCode
where
    F: FnOnce(Config, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), StartError>>,
{
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = match Config::load(service, &env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("cx-{}: configuration error: {error}", service.as_str());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    telemetry::init_tracing(&config.log_filter, config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .thread_name(format!("cx-{}", service.as_str()))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cx-{}: cannot start the runtime: {error}", service.as_str());
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let shutdown = shutdown::on_signal();
        start(config, shutdown).await
    });
    match result {
        Ok(()) => {
            tracing::info!(service = service.as_str(), "stopped");
            ExitCode::SUCCESS
        }
        Err(error) if error.is_config() => {
            tracing::error!(service = service.as_str(), %error, "configuration error");
            eprintln!("cx-{}: configuration error: {error}", service.as_str());
            ExitCode::from(EXIT_CONFIG)
        }
        Err(error) => {
            tracing::error!(service = service.as_str(), %error, "failed");
            ExitCode::FAILURE
        }
    }
}
