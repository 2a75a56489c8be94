//! Positional I/O, syncs and `poll` on one descriptor, and the path (metadata) calls: the
//! blocking calls the thread pool makes. Each returns the count (or events, or descriptor) or
//! the positive errno, as [`super::fd_type`]. Path calls take `AT_FDCWD` as the directory.

use std::ffi::CStr;
use std::os::fd::RawFd;

/// A `-1`-or-count return as the count or the calling thread's errno.
fn count(n: isize) -> Result<usize, i32> {
    if n < 0 {
        Err(super::last_errno())
    } else {
        Ok(n as usize)
    }
}

/// A `-1`-or-`0` return as `()` or the calling thread's errno.
fn unit(r: libc::c_int) -> Result<(), i32> {
    if r < 0 {
        Err(super::last_errno())
    } else {
        Ok(())
    }
}

/// `pread(2)`: up to `len` bytes at offset `off` into `buf`; the bytes read.
///
/// # Safety
/// `buf..buf+len` must be valid for writes, and not otherwise used, for the duration of the
/// call.
pub unsafe fn pread(fd: RawFd, buf: *mut u8, len: usize, off: i64) -> Result<usize, i32> {
    // SAFETY: the caller vouches for the buffer; the rest are integers.
    count(unsafe { libc::pread(fd, buf.cast(), len, off as libc::off_t) })
}

/// `pwrite(2)`: up to `len` bytes from `buf` at offset `off`; the bytes written.
///
/// # Safety
/// `buf..buf+len` must be valid for reads for the duration of the call.
pub unsafe fn pwrite(fd: RawFd, buf: *const u8, len: usize, off: i64) -> Result<usize, i32> {
    // SAFETY: the caller vouches for the buffer; the rest are integers.
    count(unsafe { libc::pwrite(fd, buf.cast(), len, off as libc::off_t) })
}

/// `preadv(2)`: into each iovec in turn from offset `off`; the bytes read.
///
/// # Safety
/// Every iovec must describe memory valid for writes, and not otherwise used, for the
/// duration of the call.
pub unsafe fn preadv(fd: RawFd, iov: &[libc::iovec], off: i64) -> Result<usize, i32> {
    // SAFETY: the array is valid for `len` entries; the caller vouches for what they describe.
    count(unsafe {
        libc::preadv(
            fd,
            iov.as_ptr(),
            iov.len() as libc::c_int,
            off as libc::off_t,
        )
    })
}

/// `pwritev(2)`: from each iovec in turn at offset `off`; the bytes written.
///
/// # Safety
/// Every iovec must describe memory valid for reads for the duration of the call.
pub unsafe fn pwritev(fd: RawFd, iov: &[libc::iovec], off: i64) -> Result<usize, i32> {
    // SAFETY: the array is valid for `len` entries; the caller vouches for what they describe.
    count(unsafe {
        libc::pwritev(
            fd,
            iov.as_ptr(),
            iov.len() as libc::c_int,
            off as libc::off_t,
        )
    })
}

/// `preadv2(2)`: [`preadv`] with `RWF_*` flags (Linux 4.6).
///
/// # Safety
/// As [`preadv`].
#[cfg(target_os = "linux")]
pub unsafe fn preadv2(fd: RawFd, iov: &[libc::iovec], off: i64, flags: i32) -> Result<usize, i32> {
    // SAFETY: as `preadv`; the flags are an integer the kernel checks.
    count(unsafe {
        libc::preadv2(
            fd,
            iov.as_ptr(),
            iov.len() as libc::c_int,
            off as libc::off_t,
            flags,
        )
    })
}

/// `pwritev2(2)`: [`pwritev`] with `RWF_*` flags (Linux 4.6).
///
/// # Safety
/// As [`pwritev`].
#[cfg(target_os = "linux")]
pub unsafe fn pwritev2(fd: RawFd, iov: &[libc::iovec], off: i64, flags: i32) -> Result<usize, i32> {
    // SAFETY: as `pwritev`; the flags are an integer the kernel checks.
    count(unsafe {
        libc::pwritev2(
            fd,
            iov.as_ptr(),
            iov.len() as libc::c_int,
            off as libc::off_t,
            flags,
        )
    })
}

/// `fsync(2)`.
pub fn fsync(fd: RawFd) -> Result<(), i32> {
    // SAFETY: plain syscall on a descriptor number.
    unit(unsafe { libc::fsync(fd) })
}

/// `fdatasync(2)`.
#[cfg(target_os = "linux")]
pub fn fdatasync(fd: RawFd) -> Result<(), i32> {
    // SAFETY: plain syscall on a descriptor number.
    unit(unsafe { libc::fdatasync(fd) })
}

/// `fsync(2)`: macOS has no public `fdatasync`.
#[cfg(not(target_os = "linux"))]
pub fn fdatasync(fd: RawFd) -> Result<(), i32> {
    fsync(fd)
}

/// `poll(2)` of one descriptor for `events`, waiting up to `timeout_ms`: the events that
/// happened (`0`: the timeout passed), or the errno (EINTR included: the caller decides).
pub fn poll_one(fd: RawFd, events: libc::c_short, timeout_ms: i32) -> Result<libc::c_short, i32> {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, which outlives the call.
    let n = unsafe { libc::poll(&raw mut p, 1, timeout_ms) };
    if n < 0 {
        return Err(super::last_errno());
    }
    Ok(if n == 0 { 0 } else { p.revents })
}

/// The `struct statx` the kernel fills (`libc::statx`, 256 bytes); a same-sized opaque block
/// where the platform has no `statx(2)`.
#[cfg(target_os = "linux")]
pub type Statx = libc::statx;
/// The `struct statx` the kernel fills; `statx(2)` is Linux-only, so here an opaque block
/// of the same size that nothing fills ([`statx`] answers ENOSYS).
#[cfg(not(target_os = "linux"))]
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy)]
pub struct Statx(pub [u8; 256]);

/// `AT_EMPTY_PATH` (Linux's value; only `statx` takes it, and only Linux has `statx`).
#[cfg(target_os = "linux")]
pub const AT_EMPTY_PATH: i32 = libc::AT_EMPTY_PATH;
/// `AT_EMPTY_PATH` (Linux's value; only `statx` takes it, and only Linux has `statx`).
#[cfg(not(target_os = "linux"))]
pub const AT_EMPTY_PATH: i32 = 0x1000;

/// A `-1`-or-descriptor return as the descriptor or the calling thread's errno.
fn fd_or_errno(r: libc::c_int) -> Result<RawFd, i32> {
    if r < 0 {
        Err(super::last_errno())
    } else {
        Ok(r)
    }
}

/// `openat(AT_FDCWD, path, flags | O_CLOEXEC, mode)`: the new descriptor. Always
/// close-on-exec, as libuv opens every file.
pub fn openat(path: &CStr, flags: i32, mode: u32) -> Result<RawFd, i32> {
    // SAFETY: `path` is a NUL-terminated string that outlives the call; the rest are integers.
    fd_or_errno(unsafe {
        libc::openat(
            libc::AT_FDCWD,
            path.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })
}

/// `close(2)`. On Linux the descriptor is released even when this reports EINTR or EIO.
pub fn close(fd: RawFd) -> Result<(), i32> {
    // SAFETY: plain syscall on a descriptor number (the caller owns it).
    unit(unsafe { libc::close(fd) })
}

/// `statx(dirfd, path, flags, mask, buf)` (Linux 4.11): fills `*buf`.
///
/// # Safety
/// `buf` must be valid for writes of `size_of::<Statx>()` bytes, and not otherwise used,
/// for the duration of the call.
#[cfg(target_os = "linux")]
pub unsafe fn statx(
    dirfd: RawFd,
    path: &CStr,
    flags: i32,
    mask: u32,
    buf: *mut Statx,
) -> Result<(), i32> {
    // SAFETY: `path` is NUL-terminated and outlives the call; the caller vouches for `buf`.
    unit(unsafe { libc::statx(dirfd, path.as_ptr(), flags, mask, buf) })
}

/// `statx(2)` is Linux-only: ENOSYS.
///
/// # Safety
/// None needed (nothing is written); kept `unsafe` to match the Linux signature.
#[cfg(not(target_os = "linux"))]
pub unsafe fn statx(
    _dirfd: RawFd,
    _path: &CStr,
    _flags: i32,
    _mask: u32,
    _buf: *mut Statx,
) -> Result<(), i32> {
    Err(libc::ENOSYS)
}

/// `unlinkat(AT_FDCWD, path, flags)` (`AT_REMOVEDIR`: `rmdir`).
pub fn unlinkat(path: &CStr, flags: i32) -> Result<(), i32> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    unit(unsafe { libc::unlinkat(libc::AT_FDCWD, path.as_ptr(), flags) })
}

/// `renameat(AT_FDCWD, from, AT_FDCWD, to)`.
pub fn renameat(from: &CStr, to: &CStr) -> Result<(), i32> {
    // SAFETY: both paths are NUL-terminated and outlive the call.
    unit(unsafe { libc::renameat(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr()) })
}

/// `mkdirat(AT_FDCWD, path, mode)`.
pub fn mkdirat(path: &CStr, mode: u32) -> Result<(), i32> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    unit(unsafe { libc::mkdirat(libc::AT_FDCWD, path.as_ptr(), mode as libc::mode_t) })
}

/// `symlinkat(target, AT_FDCWD, path)`: `path` becomes a link to `target`.
pub fn symlinkat(target: &CStr, path: &CStr) -> Result<(), i32> {
    // SAFETY: both strings are NUL-terminated and outlive the call.
    unit(unsafe { libc::symlinkat(target.as_ptr(), libc::AT_FDCWD, path.as_ptr()) })
}

/// `linkat(AT_FDCWD, from, AT_FDCWD, to, 0)`.
pub fn linkat(from: &CStr, to: &CStr) -> Result<(), i32> {
    // SAFETY: both paths are NUL-terminated and outlive the call.
    unit(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            0,
        )
    })
}

/// `lseek(2)`: the descriptor's new file offset. `SEEK_SET` and `SEEK_CUR` only read or set
/// the open file's offset in memory; nothing waits on a device.
pub fn lseek(fd: RawFd, offset: i64, whence: i32) -> Result<i64, i32> {
    // SAFETY: plain syscall on a descriptor number.
    let r = unsafe { libc::lseek(fd, offset as libc::off_t, whence) };
    if r < 0 {
        Err(super::last_errno())
    } else {
        Ok(r as i64)
    }
}

/// `ftruncate(2)`.
pub fn ftruncate(fd: RawFd, len: i64) -> Result<(), i32> {
    // SAFETY: plain syscall on a descriptor number.
    unit(unsafe { libc::ftruncate(fd, len as libc::off_t) })
}

/// `fallocate(2)` (Linux 2.6.23): `mode` 0 allocates `len` bytes at `offset` (growing the
/// file); `FALLOC_FL_KEEP_SIZE`, `FALLOC_FL_PUNCH_HOLE`, `FALLOC_FL_ZERO_RANGE` as the man
/// page. EOPNOTSUPP where the file system lacks the mode, EINVAL for `len` <= 0.
#[cfg(target_os = "linux")]
pub fn fallocate(fd: RawFd, mode: i32, offset: i64, len: i64) -> Result<(), i32> {
    // SAFETY: plain syscall on a descriptor number.
    unit(unsafe { libc::fallocate(fd, mode, offset as libc::off_t, len as libc::off_t) })
}

/// `fallocate(2)` is Linux-only: ENOSYS.
#[cfg(not(target_os = "linux"))]
pub fn fallocate(_fd: RawFd, _mode: i32, _offset: i64, _len: i64) -> Result<(), i32> {
    Err(libc::ENOSYS)
}

/// `posix_fadvise(2)`: `advice` (`POSIX_FADV_*`) for `len` bytes at `offset` (`len` 0: to
/// the end). It returns the error number itself (it leaves `errno` alone): EBADF, ESPIPE for
/// a pipe or FIFO, EINVAL for an unknown advice or a negative `len`.
#[cfg(target_os = "linux")]
pub fn fadvise(fd: RawFd, offset: i64, len: i64, advice: i32) -> Result<(), i32> {
    // SAFETY: plain syscall on a descriptor number.
    match unsafe { libc::posix_fadvise(fd, offset as libc::off_t, len as libc::off_t, advice) } {
        0 => Ok(()),
        errno => Err(errno),
    }
}

/// `posix_fadvise` has no Linux meaning elsewhere (macOS lacks it): ENOSYS.
#[cfg(not(target_os = "linux"))]
pub fn fadvise(_fd: RawFd, _offset: i64, _len: i64, _advice: i32) -> Result<(), i32> {
    Err(libc::ENOSYS)
}

/// `write(2)` at the file position: up to `len` bytes from `buf`; the bytes written.
///
/// # Safety
/// `buf..buf+len` must be valid for reads for the duration of the call.
pub unsafe fn write(fd: RawFd, buf: *const u8, len: usize) -> Result<usize, i32> {
    // SAFETY: the caller vouches for the buffer; the rest are integers.
    count(unsafe { libc::write(fd, buf.cast(), len) })
}

/// `fchmod(2)`.
pub fn fchmod(fd: RawFd, mode: libc::mode_t) -> Result<(), i32> {
    // SAFETY: plain syscall on a descriptor number.
    unit(unsafe { libc::fchmod(fd, mode) })
}

/// `ioctl(dst, FICLONE, src)`: `dst` shares `src`'s blocks (btrfs, xfs, ...).
#[cfg(target_os = "linux")]
pub fn ficlone(dst: RawFd, src: RawFd) -> Result<(), i32> {
    // SAFETY: FICLONE takes the source descriptor as its integer argument.
    unit(unsafe { libc::ioctl(dst, libc::FICLONE, src) })
}

/// `copy_file_range(2)` of up to `len` bytes from `src` at `*off` to `dst` at its position;
/// advances `*off`; the bytes copied.
#[cfg(target_os = "linux")]
pub fn copy_file_range(src: RawFd, off: &mut i64, dst: RawFd, len: usize) -> Result<usize, i32> {
    // SAFETY: `off` is a valid loff_t for the call; a null output offset means the position.
    let n = unsafe {
        libc::syscall(
            libc::SYS_copy_file_range,
            src,
            std::ptr::from_mut(off),
            dst,
            std::ptr::null_mut::<i64>(),
            len,
            0u32,
        )
    };
    count(n as isize)
}

/// `sendfile(2)` of up to `len` bytes from `src` at `*off` to `dst`; advances `*off`.
#[cfg(target_os = "linux")]
pub fn sendfile(dst: RawFd, src: RawFd, off: &mut i64, len: usize) -> Result<usize, i32> {
    // SAFETY: `off` is a valid off_t for the call.
    count(unsafe { libc::sendfile(dst, src, std::ptr::from_mut(off).cast(), len) })
}

/// The `f_type` of the file system behind `fd` (`fstatfs(2)`).
#[cfg(target_os = "linux")]
pub fn fs_type(fd: RawFd) -> Result<i64, i32> {
    let mut sfs = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: a writable statfs buffer; the kernel fills it on success.
    if unsafe { libc::fstatfs(fd, sfs.as_mut_ptr()) } < 0 {
        return Err(super::last_errno());
    }
    // SAFETY: fstatfs succeeded.
    #[allow(clippy::unnecessary_cast)] // `__fsword_t` is i64 on x86_64, i32 or u32 elsewhere
    Ok(unsafe { sfs.assume_init() }.f_type as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn positional_round_trip_and_errors() {
        let f = tempfile::tempfile().unwrap();
        let fd = f.as_raw_fd();
        let data = *b"kaio sys";
        // SAFETY: `data` outlives the call.
        assert_eq!(unsafe { pwrite(fd, data.as_ptr(), data.len(), 4) }, Ok(8));
        let mut back = [0u8; 12];
        // SAFETY: `back` outlives the call and nothing else uses it.
        assert_eq!(
            unsafe { pread(fd, back.as_mut_ptr(), back.len(), 0) },
            Ok(12)
        );
        assert_eq!(&back[4..], &data);
        let (mut a, mut b) = ([0u8; 2], [0u8; 3]);
        let vec = |b: &mut [u8]| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        };
        let iov = [vec(&mut a), vec(&mut b)];
        // SAFETY: both buffers outlive the call and nothing else uses them.
        assert_eq!(unsafe { preadv(fd, &iov, 4) }, Ok(5));
        assert_eq!((&a, &b), (b"ka", b"io "));
        assert_eq!(fsync(fd), Ok(()));
        assert_eq!(fdatasync(fd), Ok(()));
        assert_eq!(fsync(-1), Err(libc::EBADF));
        // SAFETY: as above; a bad descriptor fails before any memory is touched.
        assert_eq!(
            unsafe { pread(-1, back.as_mut_ptr(), 1, 0) },
            Err(libc::EBADF)
        );
        assert_eq!(poll_one(fd, libc::POLLIN, 0), Ok(libc::POLLIN));
    }

    #[test]
    fn path_calls_and_their_errors() {
        use std::ffi::CString;
        let dir = tempfile::tempdir().unwrap();
        let at = |s: &str| CString::new(dir.path().join(s).to_str().unwrap()).unwrap();
        let fd = openat(&at("f"), libc::O_CREAT | libc::O_RDWR | libc::O_EXCL, 0o600).unwrap();
        assert_eq!(
            openat(&at("f"), libc::O_CREAT | libc::O_EXCL, 0o600),
            Err(libc::EEXIST)
        );
        // SAFETY: F_GETFD on a descriptor we own.
        assert_ne!(
            unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC,
            0
        );
        assert_eq!(ftruncate(fd, 100), Ok(()));
        #[cfg(target_os = "linux")]
        {
            // SAFETY: all-integer struct; zeroes are valid.
            let mut st: Statx = unsafe { std::mem::zeroed() };
            // SAFETY: `st` is writable for the call.
            let r = unsafe { statx(fd, c"", AT_EMPTY_PATH, libc::STATX_SIZE, &raw mut st) };
            assert_eq!((r, st.stx_size), (Ok(()), 100));
            // SAFETY: as above.
            let r = unsafe { statx(libc::AT_FDCWD, &at("nope"), 0, 0, &raw mut st) };
            assert_eq!(r, Err(libc::ENOENT));
        }
        assert_eq!(mkdirat(&at("d"), 0o700), Ok(()));
        assert_eq!(mkdirat(&at("d"), 0o700), Err(libc::EEXIST));
        assert_eq!(symlinkat(c"f", &at("l")), Ok(()));
        assert_eq!(linkat(&at("f"), &at("h")), Ok(()));
        assert_eq!(linkat(&at("nope"), &at("h2")), Err(libc::ENOENT));
        assert_eq!(renameat(&at("h"), &at("d/h")), Ok(()));
        assert_eq!(unlinkat(&at("d"), libc::AT_REMOVEDIR), Err(libc::ENOTEMPTY));
        assert_eq!(unlinkat(&at("f"), libc::AT_REMOVEDIR), Err(libc::ENOTDIR));
        assert_eq!(unlinkat(&at("d/h"), 0), Ok(()));
        assert_eq!(unlinkat(&at("d"), libc::AT_REMOVEDIR), Ok(()));
        assert_eq!(close(fd), Ok(()));
        // Not `fd` again: tests run on parallel threads, its number may be reused already.
        assert_eq!(close(-1), Err(libc::EBADF));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn fallocate_and_fadvise_and_their_errors() {
        use std::os::unix::fs::MetadataExt;
        let f = tempfile::tempfile().unwrap();
        let fd = f.as_raw_fd();
        assert_eq!(fallocate(fd, 0, 0, 1 << 20), Ok(()));
        let m = f.metadata().unwrap();
        assert_eq!(m.len(), 1 << 20);
        assert!(m.blocks() >= 2048, "allocated: {} blocks", m.blocks());
        // KEEP_SIZE allocates past the end without growing it.
        assert_eq!(
            fallocate(fd, libc::FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20),
            Ok(())
        );
        assert_eq!(f.metadata().unwrap().len(), 1 << 20);
        assert_eq!(fallocate(fd, 0, 0, 0), Err(libc::EINVAL));
        assert_eq!(fallocate(fd, 0, -1, 1), Err(libc::EINVAL));
        assert_eq!(fallocate(-1, 0, 0, 1), Err(libc::EBADF));
        assert_eq!(fadvise(fd, 0, 0, libc::POSIX_FADV_SEQUENTIAL), Ok(()));
        assert_eq!(fadvise(fd, 0, 4096, libc::POSIX_FADV_DONTNEED), Ok(()));
        assert_eq!(fadvise(fd, 0, 0, 12345), Err(libc::EINVAL));
        assert_eq!(
            fadvise(fd, 0, -1, libc::POSIX_FADV_NORMAL),
            Err(libc::EINVAL)
        );
        assert_eq!(fadvise(-1, 0, 0, libc::POSIX_FADV_NORMAL), Err(libc::EBADF));
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        assert_eq!(
            fadvise(fds[0], 0, 0, libc::POSIX_FADV_NORMAL),
            Err(libc::ESPIPE)
        );
        assert_eq!(fallocate(fds[1], 0, 0, 1), Err(libc::ESPIPE));
        assert_eq!((close(fds[0]), close(fds[1])), (Ok(()), Ok(())));
    }
}
