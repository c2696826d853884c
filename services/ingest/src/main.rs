use std::process::ExitCode;

use cx_runtime::ServiceName;

fn main() -> ExitCode {
    cx_runtime::main_support::run(
        ServiceName::Ingest,
        cx_ingest::IngestApp::check_config,
        |config, shutdown| async move {
            cx_ingest::IngestApp::build(config)
                .await?
                .run_until_stopped(shutdown)
                .await
        },
    )
}
