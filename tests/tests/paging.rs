//! Newest-first paging of ListAlerts and ListTasks over a real Redis index.

use std::collections::HashSet;
use std::time::Duration;

use cx_runtime::paging::{newest_first, PageToken};
use cx_tests::*;
use redis::aio::ConnectionManager;

/// An index like alerting's and follow-up's: 450 ids in one millisecond
/// (a batch written at once, as after a backlog), 20 newer, 30 older.
/// Every seventh id of the big millisecond is gone (its item expired).
async fn index(conn: &mut ConnectionManager) -> (String, Vec<String>) {
    let key = unique("cx-test:paging:index");
    let mut rows: Vec<(i64, String)> = Vec::new();
    rows.extend((0..20).map(|n| (1_001, format!("new{n:03}"))));
    rows.extend((0..450).map(|n| (1_000, format!("same{n:03}"))));
    rows.extend((0..30).map(|n| (999, format!("old{n:03}"))));
    let mut add = redis::cmd("ZADD");
    add.arg(&key);
    for (score, id) in &rows {
        add.arg(score).arg(id);
    }
    let _: i64 = add.query_async(conn).await.unwrap();
    // Newest first; one score in reverse byte order, as Redis answers.
    rows.sort_by(|a, b| b.cmp(a));
    let present = rows
        .into_iter()
        .map(|(_, id)| id)
        .filter(|id| !gone(id))
        .collect();
    (key, present)
}

fn gone(id: &str) -> bool {
    id.strip_prefix("same")
        .is_some_and(|n| n.parse::<u32>().unwrap() % 7 == 0)
}

/// Every page of the index through `newest_first`, as successive List
/// calls with the token each returns. With `meanwhile`, another
/// connection removes the first id of each read from the index while this
/// List reads it (another List's housekeeping); the id is still listed.
async fn all_pages(
    conn: &mut ConnectionManager,
    key: &str,
    page_size: usize,
    keep: fn(&String) -> bool,
    meanwhile: Option<&ConnectionManager>,
) -> Vec<String> {
    let mut listed = Vec::new();
    let mut token: Option<PageToken> = None;
    loop {
        let (page, next) = newest_first(
            conn,
            key,
            None,
            token.as_ref(),
            page_size,
            async |ids: Vec<String>| {
                if let (Some(other), Some(first)) = (meanwhile, ids.first()) {
                    let _: i64 = redis::cmd("ZREM")
                        .arg(key)
                        .arg(first)
                        .query_async(&mut other.clone())
                        .await?;
                }
                Ok::<_, redis::RedisError>(
                    ids.into_iter()
                        .map(|id| (!gone(&id)).then_some(id))
                        .collect(),
                )
            },
            keep,
        )
        .await
        .unwrap();
        assert!(page.len() <= page_size);
        listed.extend(page);
        match next {
            Some(next) => token = Some(next),
            None => return listed,
        }
    }
}

async fn drop_index(conn: &mut ConnectionManager, key: &str) {
    let _: i64 = redis::cmd("DEL").arg(key).query_async(conn).await.unwrap();
}

#[tokio::test]
async fn pages_get_through_hundreds_of_ids_in_one_millisecond() {
    require_redis(&redis_url()).await;
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = ConnectionManager::new(client).await.unwrap();

    // Before, the 201st id of one millisecond was never reached: every
    // call read the same 200 again, for ever. A fresh index each time, so
    // each size meets the gone ids.
    for page_size in [1, 7, 100, 200, 500] {
        let (key, present) = index(&mut conn).await;
        let listed = tokio::time::timeout(
            Duration::from_secs(30),
            all_pages(&mut conn, &key, page_size, |_| true, None),
        )
        .await
        .unwrap_or_else(|_| panic!("page size {page_size}: no answer within 30 s"));
        assert_eq!(listed, present, "page size {page_size}");
        drop_index(&mut conn, &key).await;
    }
    let (key, present) = index(&mut conn).await;
    // A filter that keeps few: one call reads many chunks of the same
    // millisecond before its page is full.
    let keep_few = |id: &String| id.ends_with('5');
    let listed = tokio::time::timeout(
        Duration::from_secs(30),
        all_pages(&mut conn, &key, 3, keep_few, None),
    )
    .await
    .expect("no answer within 30 s");
    let expected: Vec<String> = present.iter().filter(|id| keep_few(id)).cloned().collect();
    assert_eq!(listed, expected);
    assert_eq!(listed.iter().collect::<HashSet<_>>().len(), listed.len());

    // The gone ids were dropped from the index on the way.
    let left: Vec<String> = redis::cmd("ZRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left.len(), present.len());
    drop_index(&mut conn, &key).await;
}

#[tokio::test]
async fn an_entry_removed_by_another_caller_meanwhile_skips_nothing() {
    require_redis(&redis_url()).await;
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = ConnectionManager::new(client.clone()).await.unwrap();
    let other = ConnectionManager::new(client).await.unwrap();
    for page_size in [250, 500] {
        let (key, present) = index(&mut conn).await;
        // Another List's housekeeping removes, while this one reads, an
        // entry this one has already read (and lists: it loaded it).
        let listed = tokio::time::timeout(
            Duration::from_secs(30),
            all_pages(&mut conn, &key, page_size, |_| true, Some(&other)),
        )
        .await
        .expect("no answer within 30 s");
        assert_eq!(listed, present, "page size {page_size}");
        drop_index(&mut conn, &key).await;
    }
}
