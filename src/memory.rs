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

/// mimalloc's `mi_option_purge_delay`: libmimalloc-sys names no constant
/// for it. The same index in mimalloc v2 and v3 (`mi_option_e` in
/// mimalloc.h; the test below holds it to v3's default).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// Gives freed pages back to the OS 100 ms after they are freed instead of
/// mimalloc v3's 1 s. mimalloc purges only when a thread allocates or
/// frees, so pages freed at the end of a load stayed resident in a server
/// that then sat idle, and pages freed early in a load stayed resident
/// through it. Measured on a 1,000,000-Contact tenant from its JSON file
/// (3 starts each, alternated): resident after the load 114.4–114.9 MB
/// against 117.7–122.1, peak during it 190–193 MB against 226–244, start
/// 2.95 s against 2.75 s (medians); 10 ms gave a peak of 168 MB but a start
/// of 3.09 s. BatchCheck's server CPU did not move (README, Benchmarks).
/// `MIMALLOC_PURGE_DELAY` in the environment still wins.
pub fn purge_freed_pages_soon() {
    // SAFETY: sets one of mimalloc's options to a value it documents; an
    // option set from the environment is left alone.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_the_option_we_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            eprintln!("skipped: MIMALLOC_PURGE_DELAY is set in the environment");
            return;
        }
        // SAFETY: reads and sets one of mimalloc's options.
        let (before, after) = unsafe {
            let before = libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY);
            purge_freed_pages_soon();
            (
                before,
                libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
            )
        };
        // v3's default, or ours if another test in this process set it.
        assert!(
            before == 1000 || before == PURGE_DELAY_MS,
            "purge delay was {before}"
        );
        assert_eq!(after, PURGE_DELAY_MS);
    }
}
