use clap::Parser;

/// mimalloc instead of the system allocator: a campaign of millions of rows allocates and frees
/// small strings on several threads at once (reading, storing, hashing), where glibc's malloc
/// spends a tenth of the time in its own locks and bookkeeping.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    campaign::cli::run(campaign::cli::Cli::parse()).into()
}
