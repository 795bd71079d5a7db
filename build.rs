//! Compiles proto/permd/v1/*.proto with tonic-prost-build. protoc comes from
//! the `protoc-bin-vendored` crate unless PROTOC is set, so a fresh machine
//! needs nothing installed.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY: build scripts are single-threaded; nothing else reads env concurrently.
        unsafe { std::env::set_var("PROTOC", protoc) };
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("permd_descriptor.bin"))
        .compile_protos(
            &[
                "proto/permd/v1/authorizer.proto",
                "proto/permd/v1/admin.proto",
            ],
            &["proto"],
        )?;
    println!("cargo:rerun-if-changed=proto");
    // `sqlx::migrate!` embeds migrations/ at compile time: a new migration
    // file must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    Ok(())
}
