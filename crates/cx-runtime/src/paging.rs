//! Newest-first pages over a Redis index (a zset of creation time in ms →
//! id), for the List calls of alerting and follow-up: the request's page
//! fields checked the same way, opaque page tokens, and the scan.

use std::future::Future;

use cx_domain::FieldViolation;
use redis::aio::ConnectionManager;
use redis::RedisError;

/// Where a page ends: the next starts strictly older than (created_ms, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    pub created_ms: i64,
    pub id: String,
}

impl PageToken {
    pub fn encode(&self) -> String {
        format!("{}:{}", self.created_ms, self.id)
    }

    pub fn decode(token: &str) -> Option<PageToken> {
        let (ms, id) = token.split_once(':')?;
        if id.is_empty() {
            return None;
        }
        Some(PageToken {
            created_ms: ms.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// The page size (0 → `default`, above `max` → `max`, as AIP-158 asks: a
/// client asking for more gets full pages and a next token) and resume
/// point of a List request; a bad token goes to `violations` under
/// `page_token`.
pub fn page_request(
    page_size: u32,
    page_token: &str,
    default: u32,
    max: u32,
    call: &str,
    violations: &mut Vec<FieldViolation>,
) -> (usize, Option<PageToken>) {
    let after = if page_token.is_empty() {
        None
    } else {
        let token = PageToken::decode(page_token);
        if token.is_none() {
            violations.push(FieldViolation::new(
                "page_token",
                format!("is not a token from a previous {call} answer"),
            ));
        }
        token
    };
    let size = if page_size == 0 {
        default
    } else {
        page_size.min(max)
    };
    (size as usize, after)
}

/// One page of `index_key`, newest first, from `min_ms` on, after `after`.
/// `load` fetches items by id (`None`: gone, e.g. expired); `keep` filters.
/// Gone ids are removed from the index on the way.
///
/// The index is read in chunks by score with an offset into the members
/// that share the lowest score read so far (a batch of alerts or tasks
/// written in one millisecond can hold thousands): reading by score alone
/// from that score would return the same chunk again and never get past
/// it. Ids within one score come in reverse byte order; every row must be
/// strictly older than the one before (or the token), so a member added
/// at that score meanwhile is not listed twice.
pub async fn newest_first<T, L, Fut>(
    conn: &mut ConnectionManager,
    index_key: &str,
    min_ms: Option<i64>,
    after: Option<&PageToken>,
    page_size: usize,
    mut load: L,
    keep: impl Fn(&T) -> bool,
) -> Result<(Vec<T>, Option<PageToken>), RedisError>
where
    L: FnMut(Vec<String>) -> Fut,
    Fut: Future<Output = Result<Vec<Option<T>>, RedisError>>,
{
    const CHUNK: usize = 200;
    let mut out = Vec::new();
    let min = min_ms.map_or("-inf".to_string(), |ms| ms.to_string());
    // From this score down (inclusive), skipping its first `offset` members.
    let mut cursor: Option<(i64, usize)> = after.map(|t| (t.created_ms, 0));
    let mut older_than: Option<(i64, String)> = after.map(|t| (t.created_ms, t.id.clone()));
    loop {
        let (max, offset) = match cursor {
            Some((score, offset)) => (score.to_string(), offset),
            None => ("+inf".to_string(), 0),
        };
        // One row of overlap: the row before the offset must be one already
        // read. If entries counted in the offset were removed meanwhile (by
        // another List's housekeeping), it is not, and the offset would
        // skip unread ones.
        let overlap = usize::from(offset > 0);
        let mut rows: Vec<(String, i64)> = redis::cmd("ZREVRANGEBYSCORE")
            .arg(index_key)
            .arg(&max)
            .arg(&min)
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(offset - overlap)
            .arg(CHUNK + overlap)
            .query_async(conn)
            .await?;
        if overlap == 1 {
            let Some((id, score)) = rows.first() else {
                return Ok((out, None));
            };
            if is_older(older_than.as_ref(), *score, id) {
                // Read this score again from its start: the filter below
                // drops what was listed.
                cursor = cursor.map(|(score, _)| (score, 0));
                continue;
            }
            rows.remove(0);
        }
        let exhausted = rows.len() < CHUNK;
        let Some((last_id, last_score)) = rows.last().cloned() else {
            return Ok((out, None));
        };
        let at_last_score = rows
            .iter()
            .rev()
            .take_while(|(_, s)| *s == last_score)
            .count();
        let mut next_offset = match cursor {
            Some((score, offset)) if score == last_score => offset + at_last_score,
            _ => at_last_score,
        };
        let rows: Vec<(String, i64)> = rows
            .into_iter()
            .filter(|(id, score)| is_older(older_than.as_ref(), *score, id))
            .collect();
        // Rows before a token's position are read past, not listed: the
        // bound only ever moves to older rows.
        if is_older(older_than.as_ref(), last_score, &last_id) {
            older_than = Some((last_score, last_id));
        }
        let items = load(rows.iter().map(|(id, _)| id.clone()).collect()).await?;
        let mut gone = Vec::new();
        let mut full = None;
        for ((id, score), item) in rows.into_iter().zip(items) {
            let Some(item) = item else {
                gone.push((id, score));
                continue;
            };
            if !keep(&item) {
                continue;
            }
            out.push(item);
            if out.len() == page_size {
                full = Some(PageToken {
                    created_ms: score,
                    id,
                });
                break;
            }
        }
        if !gone.is_empty() {
            // Housekeeping only: a failure leaves entries the next List drops.
            let _: Result<i64, _> = redis::cmd("ZREM")
                .arg(index_key)
                .arg(gone.iter().map(|(id, _)| id).collect::<Vec<_>>())
                .query_async(conn)
                .await;
            // Those at the cursor's score no longer count in its offset
            // (if the ZREM did not happen, the overlap row finds out).
            let at_cursor = gone.iter().filter(|(_, s)| *s == last_score).count();
            next_offset = next_offset.saturating_sub(at_cursor);
        }
        if full.is_some() {
            return Ok((out, full));
        }
        if exhausted {
            return Ok((out, None));
        }
        cursor = Some((last_score, next_offset));
    }
}

/// Whether (score, id) comes after `bound` newest first: an older score,
/// or the same score and an id lower in byte order. Everything does when
/// there is no bound.
fn is_older(bound: Option<&(i64, String)>, score: i64, id: &str) -> bool {
    bound.is_none_or(|(ms, last)| score < *ms || (score == *ms && id < last.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let token = PageToken {
            created_ms: 1_700_000_000_123,
            id: "al_00ff".into(),
        };
        assert_eq!(PageToken::decode(&token.encode()), Some(token));
        assert_eq!(PageToken::decode("nonsense"), None);
        assert_eq!(PageToken::decode("x:al_1"), None);
        assert_eq!(PageToken::decode("12:"), None);
    }

    #[test]
    fn page_requests_cap_the_size_and_name_a_bad_token() {
        let mut violations = Vec::new();
        assert_eq!(
            page_request(0, "", 50, 500, "ListAlerts", &mut violations),
            (50, None)
        );
        assert!(violations.is_empty());
        let (size, after) = page_request(501, "junk", 50, 500, "ListAlerts", &mut violations);
        assert_eq!((size, after), (500, None));
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["page_token"]);
    }
}
