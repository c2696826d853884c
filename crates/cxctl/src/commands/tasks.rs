//! `cxctl tasks list | show | update | watch` (FollowUpService).

use std::collections::HashMap;

use cx_proto::v1;
use time::OffsetDateTime;
use tonic::Request;

use super::{emit, emit_json, fetch_pages, unary, watch_once, Backoff, CmdResult, Ctx, Page};
use crate::output;
use crate::{TasksListArgs, TasksUpdateArgs, TasksWatchArgs};

pub async fn list(ctx: &Ctx, args: TasksListArgs) -> CmdResult {
    let mut client = ctx.followup().await?;
    let (tasks, more) = fetch_pages(args.limit, async |page_size, page_token| {
        let request = v1::ListTasksRequest {
            state: args.state.clone().unwrap_or_default(),
            owner: args.owner.clone().unwrap_or_default(),
            customer_id: args.customer.clone().unwrap_or_default(),
            overdue_only: args.overdue,
            page_size,
            page_token,
        };
        let page = client.list_tasks(unary(request)).await?.into_inner();
        Ok(Page {
            items: page.tasks,
            next_page_token: page.next_page_token,
        })
    })
    .await?;

    if ctx.json {
        tasks.iter().for_each(|t| emit_json(&output::task_json(t)));
        return Ok(());
    }
    if tasks.is_empty() {
        eprintln!("no tasks");
        return Ok(());
    }
    let now = OffsetDateTime::now_utc();
    let mut table = output::task_table();
    for t in &tasks {
        table.push(output::task_row(t, now));
    }
    emit(table.render().trim_end());
    if more {
        eprintln!("(more tasks may match; raise --limit, 0 for all)");
    }
    Ok(())
}

fn print_task(ctx: &Ctx, task: &v1::Task) {
    if ctx.json {
        emit_json(&output::task_json(task));
    } else {
        emit(output::task_details(task, OffsetDateTime::now_utc()).trim_end());
    }
}

pub async fn show(ctx: &Ctx, task_id: String) -> CmdResult {
    let mut client = ctx.followup().await?;
    let task = client
        .get_task(unary(v1::GetTaskRequest { task_id }))
        .await?
        .into_inner();
    print_task(ctx, &task);
    Ok(())
}

pub async fn update(ctx: &Ctx, args: TasksUpdateArgs) -> CmdResult {
    let mut client = ctx.followup().await?;
    let task = client
        .update_task(unary(v1::UpdateTaskRequest {
            task_id: args.task_id,
            version: args.version,
            state: args.state,
            owner: args.owner,
            root_cause: args.root_cause,
            resolution_note: args.note,
        }))
        .await?
        .into_inner();
    if !ctx.json {
        eprintln!(
            "updated {}: now {} at version {}",
            task.task_id, task.state, task.version
        );
        // The contract lets a resolution come without one; closing the
        // loop needs it, and it can still be given when closing.
        if task.state == "resolved" && task.root_cause.as_deref().unwrap_or("").is_empty() {
            eprintln!(
                "note: resolved without a root cause; give one with --root-cause when closing"
            );
        }
    }
    print_task(ctx, &task);
    Ok(())
}

/// How far before the last change printed a resumed watch starts: the
/// service orders its feed by Redis's clock, `updated_at` is its own.
const RESUME_MARGIN: time::Duration = time::Duration::seconds(5);

/// Follows WatchTasks. When the stream drops (the service restarted, the
/// network cut) it resumes from a little before the last change printed,
/// leaving out the changes already printed (same task and version).
pub async fn watch(ctx: &Ctx, args: TasksWatchArgs) -> CmdResult {
    let started = OffsetDateTime::now_utc();
    let owner = args.owner.unwrap_or_default();
    let customer_id = args.customer.unwrap_or_default();
    let mut client = ctx.followup().await?;
    let mut printed = Printed::default();
    let mut since = None;
    let mut established = false;
    let mut backoff = Backoff::new();
    loop {
        let request = v1::WatchTasksRequest {
            owner: owner.clone(),
            customer_id: customer_id.clone(),
            since: since.map(output::to_timestamp),
        };
        let opened = client.watch_tasks(Request::new(request)).await;
        let dropped = watch_once(opened, &mut established, &mut backoff, |task| {
            if !printed.first_time(&task) {
                return;
            }
            if ctx.json {
                emit_json(&output::task_json(&task));
            } else {
                emit(&output::task_line(&task, OffsetDateTime::now_utc()));
            }
        })
        .await?;
        since = Some(printed.latest.unwrap_or(started) - RESUME_MARGIN);
        backoff.pause("task", &dropped).await;
    }
}

/// The task versions a watch printed, to leave out what a resume repeats.
#[derive(Debug, Default)]
struct Printed {
    versions: HashMap<String, (u64, OffsetDateTime)>,
    latest: Option<OffsetDateTime>,
}

impl Printed {
    /// Bounds the map: only changes within the resume margin of the latest
    /// can come again.
    const KEEP: usize = 10_000;

    /// True for a change not printed before (a newer version of its task).
    fn first_time(&mut self, task: &v1::Task) -> bool {
        if self
            .versions
            .get(&task.task_id)
            .is_some_and(|(version, _)| task.version <= *version)
        {
            return false;
        }
        let at =
            output::from_timestamp(task.updated_at.as_ref()).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        self.versions
            .insert(task.task_id.clone(), (task.version, at));
        let latest = self.latest.map_or(at, |latest| latest.max(at));
        self.latest = Some(latest);
        if self.versions.len() > Self::KEEP {
            let horizon = latest - RESUME_MARGIN * 2;
            self.versions.retain(|_, (_, at)| *at >= horizon);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(task_id: &str, version: u64, at_s: i64) -> v1::Task {
        v1::Task {
            task_id: task_id.into(),
            version,
            updated_at: Some(output::to_timestamp(
                OffsetDateTime::from_unix_timestamp(at_s).unwrap(),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn a_resumed_watch_leaves_out_the_changes_it_printed() {
        let mut printed = Printed::default();
        assert!(printed.first_time(&change("t-1", 1, 100)));
        assert!(printed.first_time(&change("t-2", 1, 101)));
        assert!(printed.first_time(&change("t-1", 2, 102)));
        // The resume replays from before 102: all three come again.
        assert!(!printed.first_time(&change("t-1", 1, 100)));
        assert!(!printed.first_time(&change("t-2", 1, 101)));
        assert!(!printed.first_time(&change("t-1", 2, 102)));
        assert!(printed.first_time(&change("t-2", 2, 103)));
        assert_eq!(
            printed.latest,
            Some(OffsetDateTime::from_unix_timestamp(103).unwrap())
        );
    }
}
