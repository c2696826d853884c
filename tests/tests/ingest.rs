//! cx-ingest against the real broker and Redis.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cx_proto::v1::ingest_service_client::IngestServiceClient;
use cx_proto::v1::{SubmitInteractionRequest, SubmitInteractionsRequest, SubmitStatus};
use cx_runtime::ServiceName;
use cx_tests::*;
use serde_json::{json, Value};
use tonic_types::StatusExt;

const QUIET: Duration = Duration::from_millis(1500);
const TIMEOUT: Duration = Duration::from_secs(30);

async fn start() -> (Isolation, RunningIngest) {
    require_stack().await;
    let iso = Isolation::new();
    let ingest =
        RunningIngest::start(iso.config(ServiceName::Ingest, &brokers(), &redis_url())).await;
    (iso, ingest)
}

async fn grpc_client(ingest: &RunningIngest) -> IngestServiceClient<tonic::transport::Channel> {
    IngestServiceClient::connect(format!("http://{}", ingest.grpc_addr))
        .await
        .expect("grpc connect")
}

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer(token).parse().unwrap());
    request
}

async fn post(url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).json(body);
    if let Some(token) = token {
        request = request.header("authorization", bearer(token));
    }
    let response = request.send().await.expect("http request");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn accepted_interactions_land_on_the_topic_keyed_by_customer_redacted() {
    let (iso, ingest) = start().await;

    let (status, body) = post(
        &ingest.http("/v1/interactions"),
        Some(WRITER_TOKEN),
        &interaction_json("http-1", "cust-a"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body,
        json!({"interaction_id": "http-1", "duplicate": false})
    );

    let mut client = grpc_client(&ingest).await;
    let answer = client
        .submit_interaction(authed(
            SubmitInteractionRequest {
                interaction: Some(interaction_proto("grpc-1", "cust-b")),
            },
            WRITER_TOKEN,
        ))
        .await
        .expect("grpc submit")
        .into_inner();
    assert_eq!(answer.interaction_id, "grpc-1");
    assert!(!answer.duplicate);

    let batch = client
        .submit_interactions(authed(
            SubmitInteractionsRequest {
                interactions: vec![
                    interaction_proto("grpc-2", "cust-c"),
                    interaction_proto("grpc-3", "cust-c"),
                ],
            },
            WRITER_TOKEN,
        ))
        .await
        .expect("grpc batch")
        .into_inner();
    let statuses: Vec<i32> = batch.results.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![SubmitStatus::Accepted as i32; 2]);

    let records = read_topic(
        &brokers(),
        &iso.topic("cx.interactions.v1"),
        4,
        QUIET,
        TIMEOUT,
    )
    .await;
    let by_id: HashMap<String, &Record> = records
        .iter()
        .map(|r| (r.interaction().interaction_id, r))
        .collect();
    assert_eq!(records.len(), 4, "exactly the four accepted records");
    assert_eq!(by_id["http-1"].key_str(), "cust-a");
    assert_eq!(by_id["grpc-1"].key_str(), "cust-b");
    assert_eq!(by_id["grpc-2"].key_str(), "cust-c");
    let http_one = by_id["http-1"].interaction();
    assert_eq!(
        http_one.verbatim.as_deref(),
        Some("I was on hold forever, email me at [email]"),
        "PII is redacted before publishing"
    );
    assert_eq!(http_one.redactions, 1);
    assert_eq!(http_one.nps, Some(4));
    assert_eq!(http_one.queue_id.as_deref(), Some("billing"));
    assert!(http_one.ingested_at.is_some());
    assert_eq!(
        header_str(by_id["grpc-1"], "cx-interaction-id").as_deref(),
        Some("grpc-1")
    );
    // Records of one customer share a partition (ordering per customer).
    assert_eq!(by_id["grpc-2"].partition, by_id["grpc-3"].partition);

    ingest.stop().await;
}

#[tokio::test]
async fn a_repeated_interaction_is_a_duplicate_and_is_not_republished() {
    let (iso, ingest) = start().await;
    let url = ingest.http("/v1/interactions");
    let first = post(
        &url,
        Some(WRITER_TOKEN),
        &interaction_json("dup-1", "cust-a"),
    )
    .await;
    assert_eq!(
        first,
        (202, json!({"interaction_id": "dup-1", "duplicate": false}))
    );
    let again = post(
        &url,
        Some(WRITER_TOKEN),
        &interaction_json("dup-1", "cust-a"),
    )
    .await;
    assert_eq!(
        again,
        (202, json!({"interaction_id": "dup-1", "duplicate": true}))
    );

    let mut client = grpc_client(&ingest).await;
    let answer = client
        .submit_interaction(authed(
            SubmitInteractionRequest {
                interaction: Some(interaction_proto("dup-1", "cust-a")),
            },
            WRITER_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.duplicate, "same id over gRPC is a duplicate too");

    // Within one batch: the first copy is accepted, the second is a duplicate.
    let (status, body) = post(
        &ingest.http("/v1/interactions:batch"),
        Some(WRITER_TOKEN),
        &json!({"interactions": [
            interaction_json("dup-2", "cust-b"),
            interaction_json("dup-2", "cust-b"),
            interaction_json("dup-1", "cust-a"),
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let statuses: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["accepted", "duplicate", "duplicate"]);

    let ids = published_interaction_ids(&brokers(), &iso.topic("cx.interactions.v1"), 2).await;
    assert_eq!(
        ids,
        ["dup-1", "dup-2"],
        "each interaction published exactly once"
    );
    ingest.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_field_names_and_publishes_nothing() {
    let (iso, ingest) = start().await;
    let url = ingest.http("/v1/interactions");

    let mut bad = interaction_json("bad-1", "cust-a");
    bad["nps"] = json!(11);
    bad["channel"] = json!("pigeon");
    let (status, body) = post(&url, Some(WRITER_TOKEN), &bad).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_argument");
    let fields: HashSet<&str> = body["error"]["field_violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, HashSet::from(["nps", "channel"]));

    // gRPC: INVALID_ARGUMENT with google.rpc.BadRequest naming the field.
    let mut client = grpc_client(&ingest).await;
    let mut wire = interaction_proto("bad-2", "cust-a");
    wire.csat = Some(9);
    let status = client
        .submit_interaction(authed(
            SubmitInteractionRequest {
                interaction: Some(wire),
            },
            WRITER_TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let details = status.get_error_details();
    let violations = &details.bad_request().expect("BadRequest").field_violations;
    assert_eq!(violations[0].field, "csat");

    // A batch: good items are accepted beside bad ones, in order.
    let mut bad_item = interaction_json("bad-3", "cust-a");
    bad_item["occurred_at"] = json!("yesterday");
    let (status, body) = post(
        &ingest.http("/v1/interactions:batch"),
        Some(WRITER_TOKEN),
        &json!({"interactions": [bad_item, interaction_json("good-1", "cust-z"), 42]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "invalid");
    assert_eq!(results[0]["index"], 0);
    assert_eq!(results[0]["interaction_id"], "bad-3");
    assert_eq!(results[0]["field_violations"][0]["field"], "occurred_at");
    assert_eq!(results[1]["status"], "accepted");
    assert_eq!(results[2]["status"], "invalid");

    // Transport-level refusals.
    let client_http = reqwest::Client::new();
    let not_json = client_http
        .post(&url)
        .header("authorization", bearer(WRITER_TOKEN))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status().as_u16(), 415);
    let huge = json!({"interaction_id": "big", "verbatim": "x".repeat(70 * 1024)});
    assert_eq!(post(&url, Some(WRITER_TOKEN), &huge).await.0, 413);
    let too_many: Vec<Value> = (0..1001)
        .map(|i| interaction_json(&format!("m-{i}"), "c"))
        .collect();
    let (status, body) = post(
        &ingest.http("/v1/interactions:batch"),
        Some(WRITER_TOKEN),
        &json!({"interactions": too_many}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["field_violations"][0]["field"],
        "interactions"
    );
    let garbage = client_http
        .post(&url)
        .header("authorization", bearer(WRITER_TOKEN))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status().as_u16(), 400);

    // Auth: no token 401, unknown token 401, wrong scope 403, both protocols.
    assert_eq!(
        post(&url, None, &interaction_json("auth-1", "c")).await.0,
        401
    );
    assert_eq!(
        post(&url, Some("nope"), &interaction_json("auth-1", "c"))
            .await
            .0,
        401
    );
    assert_eq!(
        post(&url, Some(READER_TOKEN), &interaction_json("auth-1", "c"))
            .await
            .0,
        403
    );
    let status = client
        .submit_interaction(authed(
            SubmitInteractionRequest {
                interaction: Some(interaction_proto("auth-2", "c")),
            },
            READER_TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    let status = client
        .submit_interaction(tonic::Request::new(SubmitInteractionRequest {
            interaction: Some(interaction_proto("auth-3", "c")),
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    // Health and metrics need no token.
    let health = reqwest::get(ingest.http("/healthz")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let metrics = metrics_text(&ingest.http("/metrics")).await;
    assert!(
        metrics.contains("cx_ingest_interactions_total"),
        "{metrics}"
    );

    // Only the one good item reached the topic.
    let ids = published_interaction_ids(&brokers(), &iso.topic("cx.interactions.v1"), 1).await;
    assert_eq!(ids, ["good-1"]);
    ingest.stop().await;
}

#[tokio::test]
async fn redis_down_answers_503_and_recovers_without_restart() {
    require_stack().await;
    let mut redis = PrivateRedis::start().await;
    let iso = Isolation::new();
    let ingest =
        RunningIngest::start(iso.config(ServiceName::Ingest, &brokers(), &redis.url())).await;
    let url = ingest.http("/v1/interactions");

    assert_eq!(
        post(&url, Some(WRITER_TOKEN), &interaction_json("r-1", "c"))
            .await
            .0,
        202
    );
    redis.stop().await;
    let (status, body) = post(&url, Some(WRITER_TOKEN), &interaction_json("r-2", "c")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");

    redis.restart().await;
    // The connection manager reconnects by itself; the retry is accepted once.
    let mut accepted = None;
    for _ in 0..100 {
        let answer = post(&url, Some(WRITER_TOKEN), &interaction_json("r-2", "c")).await;
        if answer.0 == 202 {
            accepted = Some(answer.1);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        accepted.expect("accepted after Redis came back"),
        json!({"interaction_id": "r-2", "duplicate": false}),
        "a refused write left nothing behind"
    );
    let ids = published_interaction_ids(&brokers(), &iso.topic("cx.interactions.v1"), 2).await;
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"r-1".to_string()) && ids.contains(&"r-2".to_string()));
    ingest.stop().await;
}

#[tokio::test]
async fn past_its_request_budget_ingest_answers_unavailable_and_takes_the_retry_once() {
    require_stack().await;
    let iso = Isolation::new();
    let app =
        cx_ingest::IngestApp::build(iso.config(ServiceName::Ingest, &brokers(), &redis_url()))
            .await
            .expect("ingest builds");
    let admission = app.admission();
    let ingest = RunningIngest::start_app(app).await;
    let mut client = grpc_client(&ingest).await;
    let unary = || {
        authed(
            SubmitInteractionRequest {
                interaction: Some(interaction_proto("shed-1", "cust-s")),
            },
            WRITER_TOKEN,
        )
    };
    let batch = || {
        authed(
            SubmitInteractionsRequest {
                interactions: vec![interaction_proto("shed-2", "cust-s")],
            },
            WRITER_TOKEN,
        )
    };

    // Requests in progress hold the whole budget.
    let held = admission
        .try_admit(usize::MAX, "test")
        .expect("an idle ingest has its whole budget");
    let refused = client.submit_interaction(unary()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("retry"), "{refused:?}");
    let refused = client.submit_interactions(batch()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    let (status, body) = post(
        &ingest.http("/v1/interactions"),
        Some(WRITER_TOKEN),
        &interaction_json("shed-3", "cust-s"),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("unavailable"))
    );
    let (status, body) = post(
        &ingest.http("/v1/interactions:batch"),
        Some(WRITER_TOKEN),
        &json!({"interactions": [interaction_json("shed-4", "cust-s")]}),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("unavailable"))
    );

    // Once it is free, every retry is accepted as new: the refused calls
    // claimed and published nothing.
    drop(held);
    let answer = client
        .submit_interaction(unary())
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.duplicate);
    let answer = client
        .submit_interactions(batch())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.results[0].status, SubmitStatus::Accepted as i32);
    for id in ["shed-3", "shed-4"] {
        let (status, body) = post(
            &ingest.http("/v1/interactions"),
            Some(WRITER_TOKEN),
            &interaction_json(id, "cust-s"),
        )
        .await;
        assert_eq!((status, &body["duplicate"]), (202, &json!(false)), "{body}");
    }
    assert_eq!(admission.in_progress(), 0, "every permit returned");

    let ids = published_interaction_ids(&brokers(), &iso.topic("cx.interactions.v1"), 4).await;
    assert_eq!(ids, ["shed-1", "shed-2", "shed-3", "shed-4"]);
    ingest.stop().await;
}

/// Reflection (v1 and the v1alpha older clients use) lists what this
/// server serves, not the whole contract, and still resolves the
/// contract's types.
#[tokio::test]
async fn reflection_lists_the_services_this_server_serves_in_both_versions() {
    use tonic_reflection::pb::{v1, v1alpha};
    let (_iso, ingest) = start().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", ingest.grpc_addr))
        .unwrap()
        .connect()
        .await
        .expect("grpc connect");

    let ask =
        |request: v1::server_reflection_request::MessageRequest| v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        };
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let requests = vec![
        ask(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
        ask(
            v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                "cx.v1.Interaction".into(),
            ),
        ),
    ];
    let mut answers = client
        .server_reflection_info(futures::stream::iter(requests))
        .await
        .expect("reflection v1")
        .into_inner();
    let listed = answers.message().await.unwrap().unwrap().message_response;
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) = listed
    else {
        panic!("not a service list: {listed:?}");
    };
    let names: std::collections::BTreeSet<String> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    assert_eq!(
        names,
        [
            "cx.v1.IngestService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection"
        ]
        .map(String::from)
        .into()
    );
    let file = answers.message().await.unwrap().unwrap().message_response;
    assert!(
        matches!(
            file,
            Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(ref f))
                if !f.file_descriptor_proto.is_empty()
        ),
        "{file:?}"
    );

    let mut old = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = old
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .expect("reflection v1alpha")
        .into_inner();
    let listed = answers.message().await.unwrap().unwrap().message_response;
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        listed
    else {
        panic!("not a service list: {listed:?}");
    };
    assert!(
        list.service
            .iter()
            .any(|service| service.name == "cx.v1.IngestService")
            && list.service.len() == 3,
        "{list:?}"
    );
    ingest.stop().await;
}

/// Sends already-encoded request bytes, as a client with another protobuf
/// library (or a broken one) might.
#[derive(Debug, Default, Clone)]
struct RawRequestCodec;

#[derive(Debug, Default)]
struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl tonic::codec::Codec for RawRequestCodec {
    type Encode = Vec<u8>;
    type Decode = cx_proto::v1::SubmitInteractionsResponse;
    type Encoder = RawEncoder;
    type Decoder = tonic_prost::ProstDecoder<cx_proto::v1::SubmitInteractionsResponse>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

/// A string field that is not UTF-8 cannot be decoded: the whole request is
/// INVALID_ARGUMENT with a BadRequest naming the field (not INTERNAL, which
/// tells a client the server failed), and nothing is published.
#[tokio::test]
async fn a_request_that_does_not_decode_is_invalid_argument_naming_the_field() {
    use cx_proto::prost::Message;
    let (iso, ingest) = start().await;
    let mut good = interaction_proto("utf8-good", "cust-u");
    good.verbatim = None;
    let mut bad = interaction_proto("utf8-bad", "cust-u");
    bad.verbatim = Some("ok".into());
    bad.attributes.clear();
    let mut bad_bytes = cx_proto::v1::SubmitInteractionsRequest {
        interactions: vec![good, bad],
    }
    .encode_to_vec();
    let marker = bad_bytes
        .windows(2)
        .rposition(|w| w == b"ok")
        .expect("the verbatim's bytes");
    bad_bytes[marker..marker + 2].copy_from_slice(&[0xff, 0xfe]);

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", ingest.grpc_addr))
        .unwrap()
        .connect()
        .await
        .expect("grpc connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/cx.v1.IngestService/SubmitInteractions",
    );
    let status = grpc
        .unary(authed(bad_bytes, WRITER_TOKEN), path, RawRequestCodec)
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let violations = status
        .get_details_bad_request()
        .expect("BadRequest details")
        .field_violations;
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].field, "interactions.verbatim");
    assert!(
        violations[0].description.contains("UTF-8"),
        "{violations:?}"
    );

    // Nothing of the request reached the topic: a later good one is alone there.
    let after = grpc_client(&ingest)
        .await
        .submit_interaction(authed(
            SubmitInteractionRequest {
                interaction: Some(interaction_proto("utf8-after", "cust-u")),
            },
            WRITER_TOKEN,
        ))
        .await
        .expect("a good request after the bad one");
    assert!(!after.into_inner().duplicate);
    let published =
        published_interaction_ids(&brokers(), &iso.topic("cx.interactions.v1"), 1).await;
    assert_eq!(published, ["utf8-after"]);
    ingest.stop().await;
}
