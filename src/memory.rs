//! The allocator's side of loading a snapshot (the binary runs on mimalloc:
//! src/main.rs).

/// Hands the memory of the parsed data back to the OS after a whole
/// snapshot is built. The parsed data is several times the size of the
/// index built from it, and allocators keep freed pages mapped for reuse;
/// without this the resident set after a load is that of the data, not of
/// the index. (A library user on glibc gets `malloc_trim`.)
pub fn settle() {
    // SAFETY: both only return free pages of the allocator's own heap to
    // the OS; neither touches a live allocation.
    unsafe {
        libmimalloc_sys::mi_collect(true);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        libc::malloc_trim(0);
    }
}
