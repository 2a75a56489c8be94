//! The descriptor check every kernel engine runs before a positional request reaches the
//! kernel (shared by the kernel AIO and `io_uring` engines).

use crate::request::{Op, Request};
use crate::sys;

/// The result a request gets without reaching the kernel, if any. Only files whose reads
/// cannot block go to the kernel: regular files, block devices, directories (for the errors
/// below) and character devices other than terminals (USB gadget endpoints, /dev/zero).
/// Pipes, FIFOs, sockets, terminals and anonymous inodes (eventfd, timerfd, ...) would block
/// inside `io_submit`: they get ESPIPE, as pread gives them.
///
/// Otherwise says whether the completion must signal the eventfd: not for a buffered
/// (no `O_DIRECT`) read or write of a regular file or block device, which completes inside
/// `io_submit` (see the module docs); character devices may complete later (USB gadgets do).
pub(crate) fn classify(req: &Request) -> Result<bool, i64> {
    check(req, true)
}

/// [`classify`] without the signalling verdict, for engines that do not need it (`io_uring`
/// signals every completion itself): one `fstat`, no `fcntl`. `Ok(true)` when it passes.
pub(crate) fn check_type(req: &Request) -> Result<bool, i64> {
    check(req, false)
}

fn check(req: &Request, want_direct: bool) -> Result<bool, i64> {
    match sys::fd_type(req.fd) {
        Err(errno) => Err(-i64::from(errno)),
        // Kernel AIO answers EINVAL for a directory read; pread says EISDIR. Writes are left
        // to the kernel, which checks the access mode first (EBADF), as pwrite.
        Ok(t) if t == libc::S_IFDIR && matches!(req.op, Op::Read { .. } | Op::Readv { .. }) => {
            Err(-i64::from(libc::EISDIR))
        }
        Ok(t) if t == libc::S_IFREG || t == libc::S_IFBLK => {
            Ok(!want_direct || sys::is_direct(req.fd))
        }
        Ok(t) if t == libc::S_IFDIR => Ok(true),
        Ok(t) if t == libc::S_IFCHR && !sys::is_tty(req.fd) => Ok(true),
        Ok(_) => Err(-i64::from(libc::ESPIPE)),
    }
}
