//! Compiles the .proto files with protox (pure Rust), so no system `protoc`
//! is needed, and generates the tonic glue only when the `grpc` feature asks.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/google/rpc/status.proto",
        "proto/istio/mixer/v1/attributes.proto",
        "proto/istio/mixer/v1/service.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_server(grpc)
        .build_client(grpc)
        .compile_well_known_types(false)
        .compile_fds(fds)?;
    Ok(())
}
