//! `GET /events`: the engine's event record, filtered and followed, one
//! JSON document per event (Docker's stream).

use crate::error::{ApiError, ApiResult};
use crate::http::{self, Query, Resp};
use crate::server::Shared;
use berth_engine::events::{parse_time, EventFilter, EventsRequest};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// How long the stream waits for a client that does not read.
const STALL: Duration = Duration::from_secs(60);

/// The request a query string makes: `since`/`until` in Docker's forms
/// (Unix seconds with a fraction, as clients send them, or a date), and
/// `filters` (container, event, type, image, volume, label).
pub fn request(q: &Query) -> ApiResult<EventsRequest> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let time = |k: &str| -> ApiResult<Option<i64>> {
        match q.get(k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse_time(v, now, k)
                .map(Some)
                .map_err(|e| ApiError::bad_request(e.to_string())),
        }
    };
    let filter =
        EventFilter::parse(&q.filters()?).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(EventsRequest {
        since: time("since")?,
        until: time("until")?,
        filter,
    })
}

pub async fn events(s: &Arc<Shared>, q: &Query) -> ApiResult<Resp> {
    let req = request(q)?;
    let (resp, tx) = http::stream("application/json");
    let s = s.clone();
    tokio::spawn(async move {
        let r = s
            .engine(move |e| {
                // The follower polls; a client that left (its body
                // dropped) ends it at the next poll, not the next event.
                Ok(e.events_until(
                    &req,
                    || tx.is_closed(),
                    |ev| {
                        let mut v = serde_json::to_vec(ev).map_err(std::io::Error::other)?;
                        v.push(b'\n');
                        if http::send_within(&tx, Bytes::from(v), STALL) {
                            Ok(())
                        } else {
                            Err(std::io::ErrorKind::BrokenPipe.into())
                        }
                    },
                )?)
            })
            .await;
        if let Err(e) = r {
            tracing::warn!("API events: {}", e.message);
        }
    });
    Ok(resp)
}
