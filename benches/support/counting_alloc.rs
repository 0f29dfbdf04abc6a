//! A global allocator that counts allocations, for benchmarks that report
//! allocations per operation. Include with `#[path = "support/counting_alloc.rs"] mod counting_alloc;`
//! and install with `#[global_allocator] static A: counting_alloc::Counting = counting_alloc::Counting;`.
#![allow(unsafe_code, dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCS: AtomicU64 = AtomicU64::new(0);

/// Counts every allocation (and reallocation) made through it.
pub struct Counting;

// SAFETY: forwards every call unchanged to the system allocator; the only
// addition is a relaxed counter increment.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations so far in the whole process.
pub fn allocations() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

/// Average allocations per call of `f` over `iters` calls (after one warm-up
/// call, so that one-time growth of reused buffers is not counted).
pub fn per_call(iters: u64, mut f: impl FnMut()) -> f64 {
    f();
    let before = allocations();
    for _ in 0..iters {
        f();
    }
    (allocations() - before) as f64 / iters as f64
}
