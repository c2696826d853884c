//! TLS on both ports when a certificate and key are configured.

use std::process::Command;

use cx_proto::v1::ingest_service_client::IngestServiceClient;
use cx_proto::v1::SubmitInteractionRequest;
use cx_runtime::config::TlsFiles;
use cx_runtime::ServiceName;
use cx_tests::*;

/// A self-signed certificate for 127.0.0.1 (openssl CLI; stack.sh installs it).
fn self_signed(dir: &std::path::Path) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args([
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&files.key)
        .arg("-out")
        .arg(&files.cert)
        .output()
        .expect("openssl on PATH");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    files
}

#[tokio::test]
async fn grpc_and_http_are_served_over_tls_when_configured() {
    require_stack().await;
    let dir = std::env::temp_dir().join(unique("cx-tls"));
    std::fs::create_dir_all(&dir).unwrap();
    let files = self_signed(&dir);
    let iso = Isolation::new();
    let mut config = iso.config(ServiceName::Ingest, &brokers(), &redis_url());
    config.tls = Some(files.clone());
    let ingest = RunningIngest::start(config).await;

    let ca = tonic::transport::Certificate::from_pem(std::fs::read(&files.cert).unwrap());
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{}", ingest.grpc_addr))
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(ca)
                .domain_name("127.0.0.1"),
        )
        .unwrap()
        .connect()
        .await
        .expect("TLS gRPC connection");
    let mut request = tonic::Request::new(SubmitInteractionRequest {
        interaction: Some(interaction_proto("tls-1", "c")),
    });
    request
        .metadata_mut()
        .insert("authorization", bearer(WRITER_TOKEN).parse().unwrap());
    let answer = IngestServiceClient::new(channel)
        .submit_interaction(request)
        .await
        .expect("submit over TLS")
        .into_inner();
    assert!(!answer.duplicate);

    // HTTPS with the CA; plain HTTP on the same port is refused.
    let https = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&files.cert)
        .arg(format!("https://{}/healthz", ingest.http_addr))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&https.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&https.stderr)
    );
    assert_eq!(
        http_status(&ingest.http("/healthz")).await,
        None,
        "no plaintext on a TLS port"
    );

    ingest.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
