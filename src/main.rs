//! The `permd` binary: parses the command line and hands over to [`permd::cli`].

/// mimalloc: a BatchCheck of string ids allocates one String per id, and
/// glibc's allocator spent a quarter of the server's time on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    permd::memory::no_huge_pages();
    permd::cli::main()
}
