//! A global allocator that counts allocations, for benchmarks that report
//! allocations per operation. Include with `#[path = "support/counting_alloc.rs"] mod counting_alloc;`
//! and install with `#[global_allocator] static A: counting_alloc::Counting = counting_alloc::Counting;`.
#![allow(unsafe_code, dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's allocations: what a test asserting that one path
    /// allocates nothing must count, since other threads (the test
    /// harness finishing the spawn of the test's thread, a runtime's
    /// workers) allocate when they please, more so on a loaded machine.
    static THREAD_ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    // `try_with`: an allocation made while the thread's locals are being
    // torn down is not counted rather than a panic in the allocator.
    let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
}

/// Counts every allocation (and reallocation) made through it.
pub struct Counting;

// SAFETY: forwards every call unchanged to the system allocator; the only
// addition is a relaxed counter increment.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations so far in the whole process.
pub fn allocations() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

/// Average allocations per call of `f` over `iters` calls (after one warm-up
/// call, so that one-time growth of reused buffers is not counted), in the
/// whole process.
pub fn per_call(iters: u64, f: impl FnMut()) -> f64 {
    average(allocations, iters, f)
}

/// Allocations so far made by the calling thread.
pub fn thread_allocations() -> u64 {
    THREAD_ALLOCS.with(Cell::get)
}

/// As [`per_call`], counting only the calling thread's allocations: for
/// asserting that `f` itself allocates nothing, whatever other threads do
/// meanwhile.
pub fn per_call_on_this_thread(iters: u64, f: impl FnMut()) -> f64 {
    average(thread_allocations, iters, f)
}

fn average(count: fn() -> u64, iters: u64, mut f: impl FnMut()) -> f64 {
    f();
    let before = count();
    for _ in 0..iters {
        f();
    }
    (count() - before) as f64 / iters as f64
}
