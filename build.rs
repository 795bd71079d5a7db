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
    println!("cargo:rustc-env=PERMD_GIT_COMMIT={}", git_commit());
    println!("cargo:rerun-if-env-changed=PERMD_GIT_COMMIT");
    Ok(())
}

/// The commit `permd_build_info` reports: PERMD_GIT_COMMIT when set (an
/// image built from a source tarball), else `git rev-parse`, else
/// "unknown". Rebuilds when HEAD moves, watching only files that exist
/// (a missing one would rerun this script on every build).
fn git_commit() -> String {
    if let Ok(commit) = std::env::var("PERMD_GIT_COMMIT") {
        return commit;
    }
    let git = std::path::Path::new(".git");
    if git.join("HEAD").is_file() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Ok(head) = std::fs::read_to_string(git.join("HEAD"))
            && let Some(reference) = head.trim().strip_prefix("ref: ")
            && git.join(reference).is_file()
        {
            println!("cargo:rerun-if-changed=.git/{reference}");
        }
    }
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
