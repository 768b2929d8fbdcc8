fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto/types.proto");
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        // Raft frames carry whole blocks: keep them zero-copy.
        .bytes(".tpslab.types.RaftFrame.message")
        .compile_protos(&["../proto/types.proto"], &["../proto"])?;
    Ok(())
}
