//! `copyFile` as one request on a worker: libuv's `uv__fs_copyfile`, step for step, so the
//! result, the errors and the file left behind are node:fs's.
//!
//! Open the source read-only and fstat it; open the destination `O_WRONLY | O_CREAT` (plus
//! `O_EXCL` for `COPYFILE_EXCL`) with the source's mode; the same file twice is done; truncate
//! it (an EACCES on an empty new file is ignored, as ceph-fuse answers it), `fchmod` it to the
//! source's mode (EPERM ignored on CIFS/SMB, where fchmod always fails); with
//! `COPYFILE_FICLONE*` try `FICLONE` (and fail with its error for `..._FORCE`); else copy
//! `st_size` bytes in the kernel (`copy_file_range`, then `sendfile`, then read/write). Both
//! descriptors are closed whatever happened, and a failed copy removes the destination.

use std::ffi::CStr;
use std::os::fd::RawFd;

use crate::sys;

/// node's `fs.constants.COPYFILE_*`.
pub const COPYFILE_EXCL: i32 = 1;
pub const COPYFILE_FICLONE: i32 = 2;
pub const COPYFILE_FICLONE_FORCE: i32 = 4;

const CIFS_MAGIC: i64 = 0xFF53_4D42;
const SMB2_MAGIC: i64 = 0xFE53_4D42;

fn is_cifs_or_smb(fd: RawFd) -> bool {
    matches!(sys::fs_type(fd), Ok(CIFS_MAGIC | SMB2_MAGIC))
}

/// Copies `src` to `dst` with node's `mode` flags: 0 or `-errno`.
pub fn copy_file(src: &CStr, dst: &CStr, mode: i32) -> i64 {
    let srcfd = match sys::openat(src, libc::O_RDONLY, 0) {
        Ok(fd) => fd,
        Err(e) => return -i64::from(e),
    };
    let mut dstfd = -1;
    let mut result = copy_open(srcfd, dst, mode, &mut dstfd);
    if let Err(e) = sys::close(srcfd) {
        result = result.and(Err(e));
    }
    if dstfd >= 0 {
        if let Err(e) = sys::close(dstfd) {
            result = result.and(Err(e));
        }
        if result.is_err() {
            // As libuv: a failed copy leaves no partial destination (the error stands).
            let _ = sys::unlinkat(dst, 0);
        }
    }
    match result {
        Ok(()) => 0,
        Err(e) => -i64::from(e),
    }
}

fn copy_open(srcfd: RawFd, dst: &CStr, mode: i32, dstfd: &mut RawFd) -> Result<(), i32> {
    let st = sys::fstat(srcfd)?;
    let excl = if mode & COPYFILE_EXCL != 0 {
        libc::O_EXCL
    } else {
        0
    };
    *dstfd = sys::openat(dst, libc::O_WRONLY | libc::O_CREAT | excl, st.st_mode)?;
    let fd = *dstfd;
    let dst_st = sys::fstat(fd)?;
    if st.st_dev == dst_st.st_dev && st.st_ino == dst_st.st_ino {
        return Ok(());
    }
    if let Err(e) = sys::ftruncate(fd, 0) {
        if e != libc::EACCES || dst_st.st_size > 0 {
            return Err(e);
        }
    }
    if let Err(e) = sys::fchmod(fd, st.st_mode) {
        if e != libc::EPERM || !is_cifs_or_smb(fd) {
            return Err(e);
        }
    }
    if mode & (COPYFILE_FICLONE | COPYFILE_FICLONE_FORCE) != 0 {
        match sys::ficlone(fd, srcfd) {
            Ok(()) => return Ok(()),
            Err(e) if mode & COPYFILE_FICLONE_FORCE != 0 => return Err(e),
            Err(_) => {}
        }
    }
    copy_data(srcfd, fd, u64::try_from(st.st_size).unwrap_or(0))
}

/// Copies `len` bytes from `srcfd`'s offset 0 to `dstfd`'s position, as `uv_fs_sendfile`.
fn copy_data(srcfd: RawFd, dstfd: RawFd, len: u64) -> Result<(), i32> {
    let mut off = 0i64;
    let mut left = len;
    let mut kernel_copy = true;
    while left > 0 {
        let chunk = usize::try_from(left).unwrap_or(usize::MAX).min(1 << 30);
        let n = if kernel_copy {
            match sys::copy_file_range(srcfd, &mut off, dstfd, chunk) {
                Ok(n) => n,
                // Another file system could (EXDEV before 5.3, ENOTSUP), or none can here.
                Err(libc::ENOSYS | libc::EXDEV | libc::EOPNOTSUPP) => {
                    kernel_copy = false;
                    continue;
                }
                Err(libc::EPERM) if is_cifs_or_smb(dstfd) => {
                    kernel_copy = false;
                    continue;
                }
                // As libuv's uv__fs_sendfile: these go straight to the read/write copy.
                Err(libc::EINVAL | libc::EIO) => read_write(srcfd, &mut off, dstfd, chunk)?,
                Err(e) => return Err(e),
            }
        } else {
            match sys::sendfile(dstfd, srcfd, &mut off, chunk) {
                Ok(n) => n,
                Err(libc::EINVAL | libc::EIO | libc::ENOTSOCK | libc::EXDEV) => {
                    read_write(srcfd, &mut off, dstfd, chunk)?
                }
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            // The source shrank: as libuv, the copy ends there.
            break;
        }
        left -= n as u64;
    }
    Ok(())
}

/// The last resort: `pread` into a buffer and `write` it all.
fn read_write(srcfd: RawFd, off: &mut i64, dstfd: RawFd, len: usize) -> Result<usize, i32> {
    let mut buf = vec![0u8; len.min(64 * 1024)];
    let n = loop {
        // SAFETY: `buf` is ours, `buf.len()` bytes.
        match unsafe { sys::pread(srcfd, buf.as_mut_ptr(), buf.len(), *off) } {
            Err(libc::EINTR) => {}
            r => break r?,
        }
    };
    let mut done = 0;
    while done < n {
        // SAFETY: `buf[done..n]` is initialised and ours.
        match unsafe { sys::write(dstfd, buf.as_ptr().add(done), n - done) } {
            Ok(w) => done += w,
            Err(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    *off += n as i64;
    Ok(n)
}
