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

/// mimalloc's `mi_option_purge_delay` (v3's numbering; libmimalloc-sys
/// names no constant for it).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Loads in progress, and the purge delay to restore when the last ends.
static LOADS: std::sync::Mutex<(usize, Option<std::ffi::c_long>)> =
    std::sync::Mutex::new((0, None));

/// Held while a whole snapshot is loaded: the allocator returns freed pages
/// to the OS at once instead of after its purge delay (1 s by default). A
/// load frees several times the index it builds, and with the delay those
/// pages stay resident while the load runs: measured on a 1,000,000-Contact
/// file (2026-12-05), the peak (VmHWM) was 179–205 MB instead of 156 MB and
/// the sidecar held ~5 MB more afterwards, for a start 0.2–0.3 s shorter
/// (docs/bench/history.md, memory per Contact). Serving keeps the delay, so that a
/// request's buffers are reused, not faulted in anew — except while a
/// reload (a PostgreSQL gap, a NATS snapshot) runs beside it, when requests
/// pay that for a few seconds. An operator's own `MIMALLOC_PURGE_DELAY` is
/// left as it is.
#[must_use = "the immediate purging lasts as long as the guard"]
pub struct Loading {
    /// Whether this guard counted itself in [`LOADS`] (it did not when the
    /// operator set the delay).
    counted: bool,
}

impl Loading {
    pub fn start() -> Loading {
        if purge_delay_set_by_operator() {
            return Loading { counted: false };
        }
        let mut loads = LOADS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if loads.0 == 0 {
            // SAFETY: reading and setting an allocator option touches no
            // allocation; mimalloc reads the delay at each purge.
            loads.1 = Some(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) });
            unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
        }
        loads.0 += 1;
        Loading { counted: true }
    }
}

impl Drop for Loading {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let mut loads = LOADS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loads.0 = loads.0.saturating_sub(1);
        if loads.0 == 0
            && let Some(delay) = loads.1.take()
        {
            // SAFETY: as in `start`.
            unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, delay) };
        }
    }
}

/// Whether the environment sets mimalloc's purge delay, under any name
/// mimalloc reads it from (either case; `RESET_DELAY` is its older name):
/// then permd leaves the delay as the operator chose it.
pub fn purge_delay_set_by_operator() -> bool {
    std::env::vars_os().any(|(name, _)| {
        name.to_str().is_some_and(|n| {
            n.eq_ignore_ascii_case("MIMALLOC_PURGE_DELAY")
                || n.eq_ignore_ascii_case("MIMALLOC_RESET_DELAY")
        })
    })
}

/// The allocator's purge delay now, in milliseconds (for tests).
pub fn purge_delay() -> std::ffi::c_long {
    // SAFETY: as in `Loading::start`.
    unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }
}

/// How often [`spawn_purger`]'s thread asks the allocator to return pages.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Starts a thread that, every [`PURGE_EVERY`], has the allocator return
/// the pages freed longer than its purge delay ago. mimalloc purges only
/// while some thread allocates or collects, so a server that went quiet
/// after a burst of requests kept the burst's freed pages resident for as
/// long as it stayed quiet: 1.0–2.0 MB after 60 s of 8 concurrent
/// 10,000-record BatchChecks on a million-Contact tenant (docs/bench/
/// history.md, memory per Contact). The pages each worker's own heap keeps
/// for reuse are not reached from here (asking each worker to collect as
/// it parks returned nothing more). The purge delay still spares pages
/// reused within it. Once per process: a second call does nothing.
pub fn spawn_purger() -> std::io::Result<()> {
    static STARTED: std::sync::Once = std::sync::Once::new();
    let mut spawned = Ok(());
    STARTED.call_once(|| {
        spawned = std::thread::Builder::new()
            .name("permd-purge".into())
            .spawn(purge_forever)
            .map(drop);
    });
    spawned
}

fn purge_forever() {
    // SAFETY: sets up this thread's allocator heap, which `mi_collect`
    // needs (it returns at once on a thread that never allocated).
    unsafe { libmimalloc_sys::mi_thread_init() };
    loop {
        std::thread::sleep(PURGE_EVERY);
        // SAFETY: as in `settle`; without force, it frees only what is due
        // (pages past their purge delay).
        unsafe { libmimalloc_sys::mi_collect(false) };
    }
}

/// Turns transparent huge pages off for this process. mimalloc asks for
/// them on its arenas, and a 2 MB page is resident, and zeroed at its first
/// touch, however little of it is used: measured on a 1,000,000-Contact
/// tenant, it left the serving process 10–25 MB larger, raised the peak
/// while loading by 30–40 MB, and spent a third of the load's kernel time
/// clearing pages, with no difference in BatchCheck latency over gRPC
/// (docs/bench/history.md). A kernel without the setting is left as it is.
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

    /// Overlapping loads purge at once until the last ends, which restores
    /// the allocator's delay (1,000 ms unless an operator set another).
    #[test]
    fn loads_purge_at_once_and_the_last_restores_the_delay() {
        if purge_delay_set_by_operator() {
            eprintln!(
                "skipped: the environment sets mimalloc's purge delay, so loads leave it alone"
            );
            return;
        }
        let outer = Loading::start();
        let inner = Loading::start();
        assert_eq!(purge_delay(), 0);
        drop(outer);
        assert_eq!(purge_delay(), 0, "one load still runs");
        drop(inner);
        let loads = LOADS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if loads.0 == 0 {
            assert_eq!(purge_delay(), 1_000);
        }
    }
}
