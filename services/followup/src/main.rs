use std::process::ExitCode;

use cx_runtime::ServiceName;

fn main() -> ExitCode {
    cx_runtime::main_support::run(
        ServiceName::Followup,
        cx_followup::FollowupApp::check_config,
        |config, shutdown| async move {
            cx_followup::FollowupApp::build(config)
                .await?
                .run_until_stopped(shutdown)
                .await
        },
    )
}
