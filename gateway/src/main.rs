//! The `cairn` binary: parses arguments and hands over to the library.

fn main() -> std::process::ExitCode {
    cairn_gateway::cli::main()
}
