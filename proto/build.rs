//! Generates Rust from `bizra/node/v1/*.proto` with a vendored protoc, so a
//! fresh machine needs nothing but cargo. The tonic service is generated only
//! with the `grpc` feature, which keeps the consensus crate free of tonic.
fn main() {
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
    std::env::set_var("PROTOC", protoc);
    let protos = ["bizra/node/v1/chain.proto", "bizra/node/v1/node.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    // Maps are BTreeMaps so encoding is deterministic (sorted keys).
    #[cfg(feature = "grpc")]
    {
        tonic_prost_build::configure()
            .btree_map(".")
            .build_client(true)
            .build_server(true)
            .file_descriptor_set_path(
                std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("bizra_descriptor.bin"),
            )
            .compile_protos(&protos, &["."])
            .expect("compile protos");
    }
    #[cfg(not(feature = "grpc"))]
    {
        let mut cfg = prost_build::Config::new();
        cfg.btree_map(["."]);
        cfg.compile_protos(&protos, &["."]).expect("compile protos");
    }
}
