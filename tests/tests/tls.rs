//! TLS on both ports when a certificate and key are configured.

use std::process::Command;

use cx_proto::v1::ingest_service_client::IngestServiceClient;
use cx_proto::v1::SubmitInteractionRequest;
use cx_runtime::config::TlsFiles;
use cx_runtime::ServiceName;
use cx_tests::*;

fn openssl(args: &[&str], dir: &std::path::Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl on PATH (deploy/local/stack.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway CA and a server certificate for 127.0.0.1 signed by it
/// (webpki refuses a CA certificate used as the server's own).
/// Returns the server's files and the CA certificate path.
fn certificates(dir: &std::path::Path) -> (TlsFiles, std::path::PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-days",
        "1",
        "-subj",
        "/CN=cx-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&ca, dir);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    openssl(&csr, dir);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "cert.pem",
        ],
        dir,
    );
    (
        TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        },
        dir.join("ca.pem"),
    )
}

#[tokio::test]
async fn grpc_and_http_are_served_over_tls_when_configured() {
    require_stack().await;
    let dir = std::env::temp_dir().join(unique("cx-tls"));
    std::fs::create_dir_all(&dir).unwrap();
    let (files, ca_path) = certificates(&dir);
    let iso = Isolation::new();
    let mut config = iso.config(ServiceName::Ingest, &brokers(), &redis_url());
    config.tls = Some(files.clone());
    let ingest = RunningIngest::start(config).await;

    let ca = tonic::transport::Certificate::from_pem(std::fs::read(&ca_path).unwrap());
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
    // Async: the server runs on this test's runtime thread.
    let https = tokio::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&ca_path)
        .arg(format!("https://{}/healthz", ingest.http_addr))
        .output()
        .await
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
