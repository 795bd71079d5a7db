//! The `permd` binary: parses the command line and hands over to [`permd::cli`].

fn main() -> std::process::ExitCode {
    permd::cli::main()
}
