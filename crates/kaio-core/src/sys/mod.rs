//! The only module that makes raw system calls.
//!
//! `aio` mirrors the kernel AIO ABI (`include/uapi/linux/aio_abi.h`, Linux only); `file` holds
//! the thread pool's positional I/O, syncs and `poll`; the rest is portable. Every wrapper is
//! a thin function returning `io::Result` (or an errno), so the rest of the crate never sees
//! a raw `-1`/`errno` pair. `cached` is the fast path that answers from the kernel's caches
//! on the calling thread or says `EAGAIN`.

#[cfg(target_os = "linux")]
mod aio;
#[cfg(target_os = "linux")]
pub mod cached;
mod file;
#[cfg(target_os = "linux")]
pub use aio::*;
pub use file::*;

use std::io;
use std::os::fd::RawFd;

/// `RWF_*` per-request flags (`linux/fs.h`), valid in `aio_rw_flags` and for `preadv2`.
pub const RWF_HIPRI: i32 = 0x0000_0001;
pub const RWF_DSYNC: i32 = 0x0000_0002;
pub const RWF_SYNC: i32 = 0x0000_0004;
pub const RWF_NOWAIT: i32 = 0x0000_0008;
pub const RWF_APPEND: i32 = 0x0000_0010;
/// Every flag kaio passes through.
pub const RWF_SUPPORTED: i32 = RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND;

/// `fstat(2)`, or the errno.
pub fn fstat(fd: RawFd) -> Result<libc::stat, i32> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a writable stat buffer; the kernel fills it on success.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } < 0 {
        return Err(last_errno());
    }
    // SAFETY: fstat succeeded, so the struct is initialised.
    Ok(unsafe { st.assume_init() })
}

/// File type of a descriptor from `fstat(2)` (`S_IFMT` bits), or the errno.
pub fn fd_type(fd: RawFd) -> Result<libc::mode_t, i32> {
    fstat(fd).map(|st| st.st_mode & libc::S_IFMT)
}

/// Whether `fd` was opened (or set) with `O_DIRECT`; `true` when that cannot be told.
pub fn is_direct(fd: RawFd) -> bool {
    // SAFETY: F_GETFL takes no argument and only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    flags < 0 || flags & libc::O_DIRECT != 0
}

/// Whether `fd` was opened (or set) with `O_APPEND`; `true` when that cannot be told.
pub fn is_append(fd: RawFd) -> bool {
    // SAFETY: F_GETFL takes no argument and only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    flags < 0 || flags & libc::O_APPEND != 0
}

/// The size in bytes of the file or block device behind `fd` (`fstat(2)`'s `st_size`, or
/// `ioctl(BLKGETSIZE64)` for a block device, whose `st_size` is 0), or the errno.
pub fn file_size(fd: RawFd) -> Result<u64, i32> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a writable stat buffer; the kernel fills it on success.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } < 0 {
        return Err(last_errno());
    }
    // SAFETY: fstat succeeded, so the struct is initialised.
    let st = unsafe { st.assume_init() };
    if st.st_mode & libc::S_IFMT != libc::S_IFBLK {
        return Ok(st.st_size as u64);
    }
    block_device_size(fd)
}

/// `ioctl(fd, BLKGETSIZE64)`: a block device's size in bytes.
#[cfg(target_os = "linux")]
fn block_device_size(fd: RawFd) -> Result<u64, i32> {
    /// `_IOR(0x12, 114, size_t)` (`linux/fs.h`).
    const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which outlives the call.
    if unsafe { libc::ioctl(fd, BLKGETSIZE64 as _, &raw mut size) } < 0 {
        return Err(last_errno());
    }
    Ok(size)
}

#[cfg(not(target_os = "linux"))]
fn block_device_size(_fd: RawFd) -> Result<u64, i32> {
    Err(libc::ENOTSUP)
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, prio)`: the I/O priority of the calling thread.
/// Returns the errno on failure (EPERM for the RT class without privileges).
#[cfg(target_os = "linux")]
pub fn ioprio_set_current(prio: u16) -> Result<(), i32> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    // SAFETY: plain syscall with integer arguments; `0` means the calling thread.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            libc::c_long::from(prio),
        )
    };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// Thread I/O priorities exist only on Linux.
#[cfg(not(target_os = "linux"))]
pub fn ioprio_set_current(_prio: u16) -> Result<(), i32> {
    Err(libc::ENOTSUP)
}

/// A private anonymous read-write mapping of `len` bytes (zero-filled, page aligned).
pub fn mmap_anonymous(len: usize) -> io::Result<std::ptr::NonNull<u8>> {
    // SAFETY: a fresh anonymous mapping at an address the kernel picks touches no existing
    // memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    std::ptr::NonNull::new(p.cast()).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))
}

/// Unmaps `len` bytes at `ptr`.
///
/// # Safety
/// The range must lie in a mapping made by [`mmap_anonymous`] that nothing refers to any more.
pub unsafe fn munmap(ptr: *mut u8, len: usize) {
    // SAFETY: the caller guarantees the range is an unused mapping of ours; munmap of a
    // page-aligned range inside a mapping cannot fail otherwise.
    unsafe { libc::munmap(ptr.cast(), len) };
}

/// Asks for transparent huge pages on `len` bytes at `ptr` (`MADV_HUGEPAGE`). Advice only:
/// kernels without THP, or with it set to `never`, ignore it (the error is dropped).
#[cfg(target_os = "linux")]
pub fn advise_huge_pages(ptr: *mut u8, len: usize) {
    // SAFETY: MADV_HUGEPAGE changes no contents; at worst the kernel refuses the advice.
    unsafe { libc::madvise(ptr.cast(), len, libc::MADV_HUGEPAGE) };
}

/// Whether `fd` is a terminal (`isatty(3)`, an ioctl that never blocks).
pub fn is_tty(fd: RawFd) -> bool {
    // SAFETY: plain call on a descriptor number.
    unsafe { libc::isatty(fd) == 1 }
}

/// The calling thread's effective credentials: what an `io_uring` SQPOLL thread must match
/// (see `uring`'s module docs on CVE-2024-22017).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub euid: u32,
    pub egid: u32,
    pub groups: Vec<u32>,
}

/// `geteuid`, `getegid` and `getgroups` of the calling thread (these never fail).
pub fn creds() -> Creds {
    // SAFETY: plain getters without arguments.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut groups = vec![0 as libc::gid_t; 64];
    loop {
        // SAFETY: `groups` has room for `groups.len()` entries.
        let n = unsafe { libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr()) };
        if n >= 0 {
            groups.truncate(n as usize);
            break;
        }
        // EINVAL: more supplementary groups than room; ask for the count and retry.
        // SAFETY: a zero size only returns the count.
        let need = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        groups.resize(need.max(1) as usize * 2, 0);
    }
    groups.sort_unstable();
    Creds {
        euid: uid,
        egid: gid,
        groups,
    }
}

/// The calling thread's `errno` as a positive number.
pub fn last_errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// `uname(2)` release string, e.g. `6.18.0-foo`.
pub fn kernel_release() -> io::Result<String> {
    let mut uts = std::mem::MaybeUninit::<libc::utsname>::uninit();
    // SAFETY: `uts` is a writable utsname buffer.
    if unsafe { libc::uname(uts.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: uname succeeded; `release` is a NUL-terminated C string inside the struct.
    let uts = unsafe { uts.assume_init() };
    // SAFETY: see above; the pointer is valid while `uts` lives.
    let s = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) };
    Ok(s.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_type_of_a_pipe_and_a_bad_fd() {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        assert_eq!(fd_type(fds[0]), Ok(libc::S_IFIFO));
        // SAFETY: closing descriptors we own.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        assert_eq!(fd_type(-1), Err(libc::EBADF));
    }

    #[test]
    fn file_size_and_append_flag() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[1u8; 5000]).unwrap();
        assert_eq!(file_size(f.as_raw_fd()), Ok(5000));
        assert!(!is_append(f.as_raw_fd()));
        assert_eq!(file_size(-1), Err(libc::EBADF));
        let dir = tempfile::tempdir().unwrap();
        let a = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.path().join("a"))
            .unwrap();
        assert!(is_append(a.as_raw_fd()));
    }
}
