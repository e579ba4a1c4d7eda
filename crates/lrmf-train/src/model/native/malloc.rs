//! Keeps the training step's large, short-lived buffers (padded inputs, activations, their
//! gradients, per-example gradients: megabytes each, allocated and freed once per chunk)
//! inside the process.
//!
//! With glibc's defaults a buffer above the dynamic mmap threshold is mapped and unmapped on
//! every allocation, and a freed heap top above the trim threshold is returned with `brk`; the
//! next chunk then page-faults the same memory back in, zeroed by the kernel. Profiled on the
//! CIFAR-10 CNN step this was ≈ 20 % of the CPU time (page faults, memcg charging, zeroing).
//! [`keep_freed_memory`] raises both thresholds once per process (`mallopt`, glibc only; a no-op
//! elsewhere). The cost: up to [`TRIM_THRESHOLD`] bytes of freed memory stay resident.

use std::sync::Once;

/// Allocations below this size come from the heap instead of their own mapping.
const MMAP_THRESHOLD: i32 = 256 << 20;
/// Freed memory at the heap top is returned to the kernel only above this size.
const TRIM_THRESHOLD: i32 = 1 << 30;

/// Raises glibc's mmap and trim thresholds, once per process.
pub(crate) fn keep_freed_memory() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: `mallopt` only changes two allocator parameters; glibc serialises it with
        // allocation internally, and the values are within the documented ranges.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    });
}
