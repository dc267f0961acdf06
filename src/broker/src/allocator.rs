//! The process allocator: the system allocator, except that huge blocks are lazy mappings.
//!
//! Why: the `kafka-protocol` decoder sizes a `Vec` from an array count read off the wire
//! before it decodes any element (`Vec::with_capacity(count)` in `Array` and `CompactArray`).
//! A 16-byte request that claims 2^31 topics asks for hundreds of GiB, the allocation fails,
//! and Rust aborts the whole process: one bad client would take the broker down. With this
//! allocator a block of [`LAZY_BLOCK_BYTES_MIN`] or more is an anonymous `MAP_NORESERVE`
//! mapping: it costs address space, not memory, until pages are touched. The decoder then fails
//! on the next (missing) element with an ordinary error, the vector is dropped, and the mapping
//! is returned. Memory actually touched stays bounded by the request frame size, which the
//! connection layer limits (`socket.request.max.bytes`).
//!
//! Upstream fixes that check the count against the bytes left are open (kafka-protocol-rs pull
//! requests 152, 161, 200); when one is released this module can go.
//!
//! Install it with `#[global_allocator] static A: LazyHugeAllocator = LazyHugeAllocator;` in
//! every binary that decodes Kafka frames from the network (the `sluice` binary, broker tests).
//!
//! [`tune_system_allocator`] also keeps glibc from handing freed memory back to the kernel after
//! every large response: its per-thread arenas trim freed tops and its dynamic mmap threshold
//! maps blocks afresh, so each multi-MiB fetch buffer was faulted in and zeroed again. Measured
//! with `bench/run --perf`, 1 GB fetched by librdkafka on one partition: page faults fell from
//! 28% to 2% of broker time, broker CPU from 1.64 s to 0.61 s, throughput from 448 to 694 MB/s.
#![allow(unsafe_code)] // The only unsafe code in the workspace: a GlobalAlloc must be unsafe.

use std::alloc::{GlobalAlloc, Layout, System};

/// glibc keeps up to this much freed memory at the top of a heap instead of returning it.
const TRIM_THRESHOLD_BYTES: i32 = 1 << 30;
/// Blocks below this come from the heap (reused), not fresh mappings (glibc's maximum).
const MMAP_THRESHOLD_BYTES: i32 = 32 << 20;
/// Extra heap glibc reserves when it grows one, so growth is rare.
const TOP_PAD_BYTES: i32 = 64 << 20;

/// Tunes glibc's malloc for a broker's large, short-lived buffers (see the module docs).
/// Call once at start-up, before other threads run. A no-op on other C libraries.
pub fn tune_system_allocator() {
    #[cfg(target_env = "gnu")]
    for (parameter, value) in [
        (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
        (libc::M_TOP_PAD, TOP_PAD_BYTES),
    ] {
        // SAFETY: mallopt only sets malloc parameters; called before other threads start.
        let accepted = unsafe { libc::mallopt(parameter, value) };
        assert_eq!(accepted, 1, "mallopt({parameter}, {value}) refused");
    }
}

/// Blocks at least this large are lazy mappings.
pub const LAZY_BLOCK_BYTES_MIN: usize = 1 << 30;
/// Mappings are page aligned; larger alignments go to the system allocator.
const PAGE_ALIGN_BYTES_MAX: usize = 4096;

pub struct LazyHugeAllocator;

fn is_lazy(layout: &Layout) -> bool {
    layout.size() >= LAZY_BLOCK_BYTES_MIN && layout.align() <= PAGE_ALIGN_BYTES_MAX
}

// SAFETY: every block is either from `System` (returned to `System`) or from `mmap` (returned
// with `munmap` of the same length); which one is decided by the layout alone, and the same
// layout is passed to `dealloc` as to `alloc` (the GlobalAlloc contract), so the two never mix.
unsafe impl GlobalAlloc for LazyHugeAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_lazy(&layout) {
            // SAFETY: forwarded with the caller's valid, non-zero-size layout.
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: an anonymous private mapping with no address hint has no preconditions.
        let block = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if block == libc::MAP_FAILED { std::ptr::null_mut() } else { block.cast() }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_lazy(&layout) {
            // SAFETY: as `alloc`; anonymous mappings are zero-filled by the kernel.
            return unsafe { self.alloc(layout) };
        }
        // SAFETY: forwarded with the caller's valid layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if is_lazy(&layout) {
            // SAFETY: `block` came from `mmap` with exactly `layout.size()` bytes (see `alloc`).
            let unmapped = unsafe { libc::munmap(block.cast(), layout.size()) };
            assert_eq!(unmapped, 0, "munmap of a block this allocator mapped failed");
        } else {
            // SAFETY: `block` came from `System` with this layout.
            unsafe { System.dealloc(block, layout) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_unused_block_costs_no_memory() {
        let allocator = LazyHugeAllocator;
        // 256 GiB: far more than the machine has; the system allocator would fail.
        let layout = Layout::from_size_align(256 << 30, 8).unwrap();
        // SAFETY: a valid non-zero layout; the block is written once and freed with it.
        unsafe {
            let block = allocator.alloc(layout);
            assert!(!block.is_null());
            block.write(7);
            assert_eq!(block.read(), 7);
            allocator.dealloc(block, layout);
        }
    }
}
