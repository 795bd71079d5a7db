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

/// [`settle`] after a load or build of `records` records, on the thread
/// that allocated and freed its memory (only that thread can return its
/// pages): for a large tenant; a small one (a file may hold thousands) is
/// not worth the millisecond.
pub fn settle_after(records: usize) {
    if records >= SETTLE_FROM_RECORDS {
        settle();
    }
}

const SETTLE_FROM_RECORDS: usize = 100_000;

/// Turns transparent huge pages off for this process. mimalloc asks for
/// them on its arenas, and a 2 MB page is resident, and zeroed at its first
/// touch, however little of it is used: measured on a 1,000,000-Contact
/// tenant, it left the serving process 10–25 MB larger, raised the peak
/// while loading by 30–40 MB, and spent a third of the load's kernel time
/// clearing pages, with no difference in BatchCheck latency over gRPC
/// (README, Benchmarks). A kernel without the setting is left as it is.
pub fn no_huge_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process's
    // memory map; it reads no pointer and touches no allocation. The
    // kernel reads each argument as an unsigned long.
    unsafe {
        let (on, unused): (libc::c_ulong, libc::c_ulong) = (1, 0);
        libc::prctl(libc::PR_SET_THP_DISABLE, on, unused, unused, unused);
    }
}
