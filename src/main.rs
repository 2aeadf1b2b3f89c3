use clap::Parser;

fn main() -> std::process::ExitCode {
    campaign::cli::run(campaign::cli::Cli::parse()).into()
}
