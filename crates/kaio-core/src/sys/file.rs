//! Positional I/O, syncs and `poll` on one descriptor: the blocking calls the thread pool
//! makes. Each returns the count (or events) or the positive errno, as [`super::fd_type`].

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
}
