use std::process::ExitCode;

use cx_runtime::ServiceName;

fn main() -> ExitCode {
    cx_runtime::main_support::run(
        ServiceName::Scoring,
        cx_scoring::ScoringApp::check_config,
        |config, shutdown| async move {
            cx_scoring::ScoringApp::build(config)
                .await?
                .run_until_stopped(shutdown)
                .await
        },
    )
}
