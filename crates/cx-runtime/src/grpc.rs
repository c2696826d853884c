//! gRPC plumbing every service shares: health, reflection, and the
//! access policy for the auth layer.

use std::sync::Arc;

use crate::auth::{AccessPolicy, Scope};

/// `grpc.health.v1.Health` service and its reporter.
pub fn health() -> (
    tonic_health::server::HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    tonic_health::server::health_reporter()
}

/// Server reflection, v1 and the v1alpha older clients (grpcurl before
/// 1.8.8, many IDE plugins) still ask for. It lists what this server
/// serves: `service` (a `cx.v1` service), health and reflection itself;
/// the whole contract's types stay resolvable.
#[allow(clippy::type_complexity)]
pub fn reflection(
    service: &str,
) -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(cx_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(service)
            .with_service_name("grpc.health.v1.Health")
    };
    Ok((
        builder()
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .build_v1()?,
        builder()
            .with_service_name("grpc.reflection.v1alpha.ServerReflection")
            .build_v1alpha()?,
    ))
}

/// Access policy from `(path prefix, scope)` pairs; every other path (health,
/// reflection, /healthz, /readyz, /metrics) is public.
pub fn policy(rules: &'static [(&'static str, Scope)]) -> AccessPolicy {
    Arc::new(move |path: &str| {
        rules
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix))
            .map(|(_, scope)| *scope)
    })
}

pub use tonic_reflection::server::Error as ReflectionError;

/// A protobuf timestamp of a point in time.
pub fn timestamp(t: time::OffsetDateTime) -> cx_proto::prost_types::Timestamp {
    cx_proto::prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    }
}
