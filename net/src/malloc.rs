//! Tuning of the C allocator for bulk transfers.
//!
//! A download moves 256 KiB chunks through fresh buffers: a storage read on
//! the sending side, the decoder's gathering of a frame on the receiving
//! one. glibc serves allocations of that size with `mmap` and gives freed
//! heap back to the kernel early, so every chunk cost 64 page faults and
//! the zeroing of 64 fresh pages, about a third of the CPU of a loopback
//! `/get` (BENCHMARKS.md, "swarm"). Kept in the heap, the same few buffers
//! are reused.

/// Buffers up to this size come from the heap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1 << 20;

/// Free heap kept for reuse before it is given back: a few downloads' worth
/// of chunks in flight (32 requests of 256 KiB per peer).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 32 << 20;

/// Keeps chunk-sized buffers in the heap and up to 32 MiB of freed memory
/// for reuse, instead of mapping and unmapping them per chunk. A process
/// that moves files in bulk calls it once at start (`p2p-node` does); it is
/// a process-wide setting, so a library never calls it behind its
/// embedder's back. Does nothing outside glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's own parameters; any value is
    // accepted or refused with a return of 0, which changes nothing.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
