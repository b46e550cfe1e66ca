//! How a weft process asks the C allocator to keep the memory it frees.
//!
//! A call that carries a 64 KiB body allocates and frees several buffers of
//! that size: the arguments lifted out of the caller, the encoded message,
//! the results. glibc's allocator gives memory at the top of its heap back
//! to the kernel as soon as 128 KiB are free there, so the next call asks
//! for it again and faults in every page afresh. Measured in the
//! benchmark's part (d), that churn was most of the time a worker added to
//! a 64 KiB call. [`keep_freed_memory`] raises the threshold, so a process
//! keeps up to [`KEEP`] of freed heap for reuse; that is the price.

/// How much freed memory at the top of the heap the allocator keeps.
pub const KEEP: usize = 64 << 20;
/// How much more than asked the heap grows by, so that it grows rarely.
const PAD: usize = 16 << 20;

/// Tunes glibc's allocator for weft's buffers; call once, at start, before
/// other threads run. Elsewhere (musl, other systems) it does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; both values are in
    // range for a C int.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP as libc::c_int);
        libc::mallopt(libc::M_TOP_PAD, PAD as libc::c_int);
    }
}
