//! `cxctl tasks list | show | update | watch` (FollowUpService).

use cx_proto::v1;
use time::OffsetDateTime;
use tonic::Request;

use super::{emit, emit_json, fetch_pages, unary, CmdResult, Ctx, Page};
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
    }
    print_task(ctx, &task);
    Ok(())
}

/// Follows WatchTasks until the stream ends or fails (the request has no
/// resume point, so a dropped stream is reported rather than silently resumed).
pub async fn watch(ctx: &Ctx, args: TasksWatchArgs) -> CmdResult {
    let mut client = ctx.followup().await?;
    let mut stream = client
        .watch_tasks(Request::new(v1::WatchTasksRequest {
            owner: args.owner.unwrap_or_default(),
            customer_id: args.customer.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    while let Some(task) = stream.message().await? {
        if ctx.json {
            emit_json(&output::task_json(&task));
        } else {
            emit(&output::task_line(&task, OffsetDateTime::now_utc()));
        }
    }
    eprintln!("cxctl: the service ended the task stream");
    Ok(())
}
