//! Admission: a budget on the request bytes ingest holds at once.
//!
//! Ingest's memory follows the interactions in progress: decoded, validated,
//! then held until Kafka acknowledges them. When Kafka or Redis slows down,
//! calls pile up and so does that memory. So a request is admitted by the
//! size of its body, before the body is decoded, against one budget shared
//! by gRPC and HTTP; one that does not fit is answered at once with
//! UNAVAILABLE / 503 (retryable, nothing done) and its body is never read.
//!
//! It is answered rather than made to wait: on HTTP/2 a waiting stream's
//! unread body keeps the connection's flow-control window, which the
//! admitted streams on that connection need to finish reading theirs.
//!
//! The size is what the client declares before sending the body: the gRPC
//! message's length prefix, or HTTP's `content-length` (the route's limit
//! when absent). A request larger than the whole budget is admitted only
//! when nothing else is in progress, so every size the contract allows can
//! get through.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use cx_runtime::ServiceError;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::server::NamedService;

use crate::telemetry;

/// Length of a gRPC message's prefix: a compression flag, then the
/// message's length as a big-endian u32.
const GRPC_PREFIX_BYTES: usize = 5;

/// The shared budget of request-body bytes in progress.
#[derive(Clone, Debug)]
pub struct Admission {
    budget: Arc<Semaphore>,
    capacity: u32,
}

impl Admission {
    pub fn new(capacity_bytes: u32) -> Admission {
        Admission {
            budget: Arc::new(Semaphore::new(capacity_bytes as usize)),
            capacity: capacity_bytes,
        }
    }

    /// Holds `body_bytes` of the budget until the permit is dropped, or
    /// `None` when they do not fit now.
    pub fn try_admit(&self, body_bytes: usize, api: &'static str) -> Option<OwnedSemaphorePermit> {
        let weight = u32::try_from(body_bytes)
            .unwrap_or(u32::MAX)
            .clamp(1, self.capacity);
        let permit = self.budget.clone().try_acquire_many_owned(weight).ok();
        if permit.is_none() {
            telemetry::count_shed(api);
        }
        permit
    }

    /// Bytes of the budget held by requests in progress.
    pub fn in_progress(&self) -> usize {
        self.capacity as usize - self.budget.available_permits()
    }

    /// The answer to a request that did not fit.
    pub fn refusal(&self) -> ServiceError {
        ServiceError::Unavailable(format!(
            "ingest is at its limit of {} request bytes in progress; retry shortly",
            self.capacity
        ))
    }
}

/// A gRPC service whose requests are admitted by their message's length
/// before it is decoded. The permit is held until the answer is ready.
#[derive(Clone)]
pub struct Admitted<S> {
    inner: S,
    admission: Admission,
}

impl<S> Admitted<S> {
    pub fn new(inner: S, admission: Admission) -> Admitted<S> {
        Admitted { inner, admission }
    }
}

impl<S: NamedService> NamedService for Admitted<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for Admitted<S>
where
    S: tower::Service<http::Request<tonic::body::Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let held = Arc::new(OnceLock::new());
        let request = request.map(|body| {
            tonic::body::Body::new(AdmittedBody {
                inner: body,
                admission: self.admission.clone(),
                prefix: [0; GRPC_PREFIX_BYTES],
                prefix_seen: 0,
                held: held.clone(),
            })
        });
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            drop(held);
            answer
        })
    }
}

/// The request body, admitted when its first message's length is known.
/// Refused, it ends with the refusal, which tonic answers with.
struct AdmittedBody {
    inner: tonic::body::Body,
    admission: Admission,
    prefix: [u8; GRPC_PREFIX_BYTES],
    prefix_seen: usize,
    /// Where the permit goes; the service's answer future keeps it alive.
    held: Arc<OnceLock<OwnedSemaphorePermit>>,
}

impl AdmittedBody {
    /// Notes the prefix bytes of `data`; once all are seen, admits.
    fn admit(&mut self, data: &Bytes) -> Result<(), tonic::Status> {
        if self.prefix_seen == GRPC_PREFIX_BYTES {
            return Ok(());
        }
        let take = data.len().min(GRPC_PREFIX_BYTES - self.prefix_seen);
        self.prefix[self.prefix_seen..self.prefix_seen + take].copy_from_slice(&data[..take]);
        self.prefix_seen += take;
        if self.prefix_seen < GRPC_PREFIX_BYTES {
            return Ok(());
        }
        let length = u32::from_be_bytes([
            self.prefix[1],
            self.prefix[2],
            self.prefix[3],
            self.prefix[4],
        ]);
        let declared = GRPC_PREFIX_BYTES + length as usize;
        match self.admission.try_admit(declared, "grpc") {
            Some(permit) => {
                // Set once: the prefix is complete only once.
                let _ = self.held.set(permit);
                Ok(())
            }
            None => Err(self.admission.refusal().into()),
        }
    }
}

impl Body for AdmittedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()?.data_ref()) {
            if let Err(refused) = self.admit(data) {
                return Poll::Ready(Some(Err(refused)));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An HTTP request's declared `content-length`, when it declares a valid one.
pub fn declared_length(request: &http::Request<axum::body::Body>) -> Option<usize> {
    request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// What an HTTP request weighs: its declared `content-length`, or `limit`
/// (the route's largest body) when it declares none.
pub fn http_body_bytes(request: &http::Request<axum::body::Body>, limit: usize) -> usize {
    declared_length(request).map_or(limit, |declared| declared.min(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    use http_body_util::BodyExt;
    use tokio::sync::oneshot;

    /// A gRPC-framed message of `length` bytes, its prefix split across
    /// two frames as a client may send it.
    fn grpc_body(length: u32) -> tonic::body::Body {
        let mut message = vec![0u8];
        message.extend_from_slice(&length.to_be_bytes());
        message.resize(GRPC_PREFIX_BYTES + length as usize, 7);
        let rest = message.split_off(3);
        let frames = futures::stream::iter([
            Ok::<_, Infallible>(Frame::data(Bytes::from(message))),
            Ok(Frame::data(Bytes::from(rest))),
        ]);
        tonic::body::Body::new(http_body_util::StreamBody::new(frames))
    }

    /// Reads the whole body (as tonic's decoder does), then waits for
    /// `release` before answering; answers with what reading gave.
    #[derive(Clone)]
    struct Reader {
        release: Arc<std::sync::Mutex<Option<oneshot::Receiver<()>>>>,
    }

    impl tower::Service<http::Request<tonic::body::Body>> for Reader {
        type Response = Result<usize, tonic::Code>;
        type Error = Infallible;
        type Future = futures::future::BoxFuture<'static, Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
            let release = self.release.lock().unwrap().take();
            Box::pin(async move {
                let read = match request.into_body().collect().await {
                    Ok(collected) => Ok(collected.to_bytes().len()),
                    Err(status) => Err(status.code()),
                };
                if read.is_ok() {
                    if let Some(release) = release {
                        let _ = release.await;
                    }
                }
                Ok(read)
            })
        }
    }

    /// One call of `service` with a message of `length` bytes.
    async fn call<S>(service: &mut S, length: u32) -> S::Response
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = Infallible>,
    {
        service
            .call(http::Request::new(grpc_body(length)))
            .await
            .unwrap()
    }

    fn reader() -> (Reader, oneshot::Sender<()>) {
        let (release, wait) = oneshot::channel();
        let reader = Reader {
            release: Arc::new(std::sync::Mutex::new(Some(wait))),
        };
        (reader, release)
    }

    #[tokio::test]
    async fn a_request_past_the_budget_is_refused_before_decoding_until_the_one_in_progress_answers(
    ) {
        use tower::Service;
        let admission = Admission::new(1000);
        let (reader, release) = reader();
        let mut service = Admitted::new(reader, admission.clone());

        let first = tokio::spawn(service.call(http::Request::new(grpc_body(600))));
        tokio::task::yield_now().await;
        while admission.in_progress() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(admission.in_progress(), 605);

        // 605 + 405 > 1000: refused with UNAVAILABLE, holding nothing.
        let refused = call(&mut service, 400).await;
        assert_eq!(refused, Err(tonic::Code::Unavailable));
        assert_eq!(admission.in_progress(), 605);
        // One that fits beside it is admitted.
        let fits = call(&mut service, 300).await;
        assert_eq!(fits, Ok(305));

        // The permit is held until the first answers, then returned.
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), Ok(605));
        assert_eq!(admission.in_progress(), 0);
        let now_fits = call(&mut service, 400).await;
        assert_eq!(now_fits, Ok(405));
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_gets_through_alone() {
        let admission = Admission::new(100);
        let (reader, release) = reader();
        drop(release);
        let mut service = Admitted::new(reader, admission.clone());
        let answer = call(&mut service, 5000).await;
        assert_eq!(answer, Ok(5005));
        assert_eq!(admission.in_progress(), 0);
    }

    #[test]
    fn an_http_request_weighs_its_declared_length_capped_at_the_limit() {
        let with_length = |length: &str| {
            http::Request::builder()
                .header(http::header::CONTENT_LENGTH, length)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        assert_eq!(http_body_bytes(&with_length("1200"), 4096), 1200);
        assert_eq!(http_body_bytes(&with_length("999999"), 4096), 4096);
        assert_eq!(http_body_bytes(&with_length("garbage"), 4096), 4096);
        let chunked = http::Request::new(axum::body::Body::empty());
        assert_eq!(http_body_bytes(&chunked, 4096), 4096);
    }

    #[test]
    fn permits_return_to_the_budget_when_dropped() {
        let admission = Admission::new(10);
        let a = admission.try_admit(6, "http").expect("fits");
        assert!(admission.try_admit(6, "http").is_none());
        let b = admission.try_admit(4, "http").expect("fits beside");
        assert_eq!(admission.in_progress(), 10);
        drop((a, b));
        assert_eq!(admission.in_progress(), 0);
    }
}
