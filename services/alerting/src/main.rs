use std::process::ExitCode;

use cx_runtime::ServiceName;

fn main() -> ExitCode {
    cx_runtime::main_support::run(
        ServiceName::Alerting,
        cx_alerting::AlertingApp::check_config,
        |config, shutdown| async move {
            cx_alerting::AlertingApp::build(config)
                .await?
                .run_until_stopped(shutdown)
                .await
        },
    )
}
