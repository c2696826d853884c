//! Generates the cx.v1 messages and services once, for every crate.
//! protoc comes vendored (a fresh machine needs no apt package); set PROTOC to
//! use another one.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when run, not baked in when compiled: two checkouts sharing one
    // target directory share this script's binary (cargo's hash of a path
    // package does not include its location).
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "cx/v1/interaction.proto",
        "cx/v1/ingest.proto",
        "cx/v1/metrics.proto",
        "cx/v1/alerts.proto",
        "cx/v1/followup.proto",
    ];
    if std::env::var_os("PROTOC").is_none() {
        // prost-build reads PROTOC; a build script is single-threaded.
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        std::env::set_var("PROTOC", protoc);
    }
    let include = protoc_bin_vendored::include_path()?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // INVALID_ARGUMENT, not INTERNAL, for a request that does not decode.
        .codec_path("crate::codec::InvalidArgumentCodec")
        .file_descriptor_set_path(out_dir.join("cx_v1_descriptor.bin"))
        .compile_protos(
            &files.map(|f| proto_root.join(f)),
            &[proto_root.clone(), include],
        )?;
    println!("cargo:rerun-if-changed={}", proto_root.display());
    Ok(())
}
