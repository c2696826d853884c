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

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Mode {
    Serve,
    CheckConfig,
    Help,
    Version,
}

fn parse_args(args: &[String]) -> Result<Mode, String> {
    match args {
        [] => Ok(Mode::Serve),
        [one] => match one.as_str() {
            "--check-config" => Ok(Mode::CheckConfig),
            "-h" | "--help" => Ok(Mode::Help),
            "-V" | "--version" => Ok(Mode::Version),
            other => Err(format!("unknown argument `{other}`")),
        },
        _ => Err("at most one argument".into()),
    }
}

fn usage(service: ServiceName) -> String {
    format!(
        "usage: cx-{0} [--check-config | --help | --version]\n\n\
         Runs the cxloop {0} service until SIGTERM. Configuration comes from the\n\
         environment (CX_KAFKA_BROKERS, CX_REDIS_URL, CX_AUTH_TOKENS, …) and the\n\
         optional TOML file named by CX_CONFIG; see README.md.\n\n\
         --check-config  load and check the configuration (variables, file, the\n\
         \x20               service's own section) without connecting to anything;\n\
         \x20               exit 0 when it would start, 64 when it would not",
        service.as_str()
    )
}

/// Runs the service: `check` is the service's own validation of its part of
/// the configuration (the part `start` would refuse), used alone by
/// `--check-config`.
pub fn run<C, F, Fut>(service: ServiceName, check: C, start: F) -> ExitCode
where
    C: FnOnce(&Config) -> Result<(), StartError>,
    F: FnOnce(Config, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), StartError>>,
{
    let name = format!("cx-{}", service.as_str());
    // args() would panic on an argument that is not Unicode.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let mode = match parse_args(&args) {
        Ok(mode) => mode,
        Err(reason) => {
            eprintln!("{name}: {reason}\n{}", usage(service));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match mode {
        Mode::Help => {
            println!("{}", usage(service));
            return ExitCode::SUCCESS;
        }
        Mode::Version => {
            println!("{name} {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Mode::Serve | Mode::CheckConfig => {}
    }
    return_large_blocks_to_the_os();
    // vars() would panic on a variable that is not Unicode.
    let env: HashMap<String, String> = std::env::vars_os()
        .map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        })
        .collect();
    // Names only: a misspelt variable may hold a secret.
    let unknown = crate::config::unknown_variables(&env).join(", ");
    let config = match Config::load(service, &env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{name}: configuration error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // The same exit 64 whether asked to check or to serve.
    if let Err(error) = crate::server::check_shared_config(&config) {
        eprintln!("{name}: configuration error: {error}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if mode == Mode::CheckConfig {
        if !unknown.is_empty() {
            eprintln!("{name}: warning: no service reads these variables: {unknown}");
        }
        return match check(&config) {
            Ok(()) => {
                println!("{name}: configuration is valid");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{name}: configuration error: {error}");
                ExitCode::from(EXIT_CONFIG)
            }
        };
    }
    telemetry::init_tracing(&config.log_filter, config.log_format);
    if !unknown.is_empty() {
        tracing::warn!(variables = %unknown, "no service reads these CX_ variables; misspelt?");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn the_command_line_takes_one_flag_at_most() {
        assert_eq!(parse_args(&args(&[])), Ok(Mode::Serve));
        assert_eq!(
            parse_args(&args(&["--check-config"])),
            Ok(Mode::CheckConfig)
        );
        assert_eq!(parse_args(&args(&["--help"])), Ok(Mode::Help));
        assert_eq!(parse_args(&args(&["-V"])), Ok(Mode::Version));
        assert_eq!(
            parse_args(&args(&["--chek-config"])),
            Err("unknown argument `--chek-config`".to_string())
        );
        assert!(parse_args(&args(&["--check-config", "--help"])).is_err());
    }
}
