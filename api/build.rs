fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto/api.proto");
    println!("cargo:rerun-if-changed=../proto/types.proto");
    tonic_prost_build::configure()
        .extern_path(".tpslab.types", "::tpslab_types::pb")
        .compile_protos(&["../proto/api.proto"], &["../proto"])?;
    Ok(())
}
