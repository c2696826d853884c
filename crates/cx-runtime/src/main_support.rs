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

/// glibc raises its mmap threshold each time a large block is freed; from
/// then on batch-sized buffers come from the heap arenas and their pages
/// stay resident after they are freed. cx-scoring working through a
/// backlog peaked at 79 MB RSS with under 50 MB live. Pinning the threshold
/// at glibc's initial 128 KiB hands large blocks back to the OS on free.
/// Must run before any thread allocates; `MALLOC_MMAP_THRESHOLD_` in the
/// environment still wins.
#[allow(unsafe_code)]
fn return_large_blocks_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes allocator parameters; called before
        // any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}

/// Hands the free pages inside glibc's heap arenas back to the OS. A
/// batch's many small blocks are freed in the middle of an arena, where
/// glibc keeps them resident; cx-scoring working through a backlog held
/// 104–110 MB RSS without this and 95–97 MB with it after every committed
/// staged batch, at the same rate (docs/BENCHMARKS.md).
#[allow(unsafe_code)]
pub(crate) fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the OS; it takes the
    // arena locks itself and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

pub fn run<F, Fut>(service: ServiceName, start: F) -> ExitCode
where
    F: FnOnce(Config, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), StartError>>,
{
    return_large_blocks_to_the_os();
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
