use std::process::ExitCode;

// jemalloc hands freed memory back to the OS; glibc's malloc kept each thread arena's peak (an
// Argon2 hash borrows 19 MiB), so a server that had registered a few thousand users sat at
// a gigabyte while idle. It is also the faster allocator for many small, short-lived buffers.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    switchboard::cli::main()
}
