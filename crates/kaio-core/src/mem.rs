//! Zero-filled aligned memory for I/O buffers.
//!
//! Large buffers (2 MiB and up) are their own anonymous mapping, placed on a 2 MiB boundary
//! with `MADV_HUGEPAGE`: backed by transparent huge pages, an `O_DIRECT` request pins one page
//! instead of 256 per MiB and reaches the device as one physically contiguous segment. Here
//! 1 MiB `O_DIRECT` reads at depth 8 went from ~5k to ~8k per second with huge pages, for fio
//! (THP set to `always`) and for kaio (these mappings, under THP `madvise`, the common
//! default); see benchmark/RESULTS.md, section 7. Smaller buffers come from the global
//! allocator. Only Linux gets the mappings.

use std::alloc::Layout;
use std::ptr::NonNull;

use crate::sys;

/// The size of a transparent huge page on x86-64 and arm64 with 4 KiB pages.
pub const HUGE_PAGE: usize = 2 << 20;

enum Kind {
    Heap(Layout),
    /// The mapping's length (the buffer's, rounded up to whole pages).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Mapped(usize),
}

/// An owned, zero-filled allocation aligned to at least the requested alignment.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    kind: Kind,
}

// SAFETY: the buffer owns its memory exclusively; moving it between threads moves that
// ownership (the binding frees it on whichever thread runs the finalizer).
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// `len` zero bytes aligned to `align` (a power of two, at most 64 KiB).
    pub fn zeroed(len: usize, align: usize) -> std::io::Result<Self> {
        let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_owned());
        if !align.is_power_of_two() || align > 65536 {
            return Err(invalid("alignment must be a power of two up to 65536"));
        }
        #[cfg(target_os = "linux")]
        if len >= HUGE_PAGE {
            return Self::huge(len);
        }
        let layout =
            Layout::from_size_align(len.max(1), align).map_err(|e| invalid(&e.to_string()))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Self {
            ptr,
            len,
            kind: Kind::Heap(layout),
        })
    }

    /// A mapping starting on a huge-page boundary: map one huge page more than needed, unmap
    /// the slack before the boundary and after the end.
    #[cfg(target_os = "linux")]
    fn huge(len: usize) -> std::io::Result<Self> {
        let page = 4096;
        let want = len.div_ceil(page) * page;
        let total = want + HUGE_PAGE;
        let base = sys::mmap_anonymous(total)?.as_ptr();
        let head = (HUGE_PAGE - base as usize % HUGE_PAGE) % HUGE_PAGE;
        // SAFETY: `base..base+total` is the mapping just made; `head + want <= total`, so both
        // trimmed ranges lie inside it and nothing refers to them yet.
        let ptr = unsafe {
            if head > 0 {
                sys::munmap(base, head);
            }
            let ptr = base.add(head);
            let tail = total - head - want;
            if tail > 0 {
                sys::munmap(ptr.add(want), tail);
            }
            ptr
        };
        sys::advise_huge_pages(ptr, want);
        Ok(Self {
            ptr: NonNull::new(ptr).expect("mmap never maps page zero"),
            len,
            kind: Kind::Mapped(want),
        })
    }

    /// The first byte.
    #[must_use]
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The length asked for.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the length is zero.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        match self.kind {
            // SAFETY: allocated in `zeroed` with this layout, freed once (here).
            Kind::Heap(layout) => unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) },
            // SAFETY: the mapping made in `huge`, of this length, unmapped once (here).
            Kind::Mapped(len) => unsafe { sys::munmap(self.ptr.as_ptr(), len) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(len: usize, align: usize) {
        let b = AlignedBuf::zeroed(len, align).unwrap();
        assert_eq!(b.as_ptr() as usize % align, 0);
        assert_eq!(b.len(), len);
        // SAFETY: the buffer owns `len` initialised (zeroed) bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(b.as_ptr(), len) };
        assert!(bytes.iter().all(|&x| x == 0));
        bytes.fill(0xa5);
    }

    #[test]
    fn small_and_large_buffers_are_aligned_zeroed_and_writable() {
        check(0, 4096);
        check(1, 512);
        check(4096, 4096);
        check(1 << 20, 65536);
        check(HUGE_PAGE, 4096);
        check(3 * HUGE_PAGE + 123, 4096);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn large_buffers_start_on_a_huge_page_boundary() {
        let b = AlignedBuf::zeroed(HUGE_PAGE, 4096).unwrap();
        assert_eq!(b.as_ptr() as usize % HUGE_PAGE, 0);
    }

    /// The mapping is advised for huge pages: /proc/self/smaps says `THPeligible: 1` for it
    /// (eligibility, which does not depend on the kernel finding a free huge page). Skipped
    /// where THP is off.
    #[cfg(target_os = "linux")]
    #[test]
    fn large_buffers_are_eligible_for_huge_pages() {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
        if mode.map_or(true, |m| m.contains("[never]")) {
            eprintln!("skipped: transparent huge pages are off or absent here");
            return;
        }
        let b = AlignedBuf::zeroed(2 * HUGE_PAGE, 4096).unwrap();
        let at = b.as_ptr() as usize;
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        // The mapping holding the buffer: a header line `start-end perms ...`, then its fields.
        let range = |l: &str| {
            let (a, b) = l.split_whitespace().next()?.split_once('-')?;
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            ))
        };
        let mut lines = smaps
            .lines()
            .skip_while(|l| !range(l).is_some_and(|(a, b)| a <= at && at < b));
        let first = lines.next();
        let block: Vec<&str> = first
            .into_iter()
            .chain(lines.take_while(|l| range(l).is_none()))
            .collect();
        assert!(!block.is_empty(), "no mapping holds the buffer");
        assert!(
            block
                .iter()
                .any(|l| l.split_whitespace().eq(["THPeligible:", "1"])),
            "{block:?}"
        );
    }

    #[test]
    fn bad_alignments_are_refused() {
        assert!(AlignedBuf::zeroed(10, 3).is_err());
        assert!(AlignedBuf::zeroed(10, 1 << 17).is_err());
    }
}
