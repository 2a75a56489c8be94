//! The blocking calls the pool's workers make, one request at a time: positional reads and
//! writes, syncs, and a poll that notices cancellation (the kernel AIO engine also runs a
//! request here, on its own thread, when it has no pool threads).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::request::{Op, Request};
use crate::sys;

/// How often a blocked `poll` looks for cancellation or shutdown, in milliseconds.
const POLL_SLICE_MS: i32 = 50;

fn ret(n: isize) -> i64 {
    if n < 0 {
        -i64::from(sys::last_errno())
    } else {
        n as i64
    }
}

/// Runs one request on this thread; returns bytes, the ready mask, or `-errno`.
#[must_use]
pub fn execute(req: &Request, cancel: &AtomicBool, stop: &AtomicBool) -> i64 {
    if req.rw_flags & !sys::RWF_SUPPORTED != 0 {
        return -i64::from(libc::EOPNOTSUPP);
    }
    if let Some(prio) = req.priority {
        // The priority applies to this worker thread for this one request (kernel AIO sets it
        // per iocb with IOCB_FLAG_IOPRIO); the default class is restored afterwards.
        if let Err(errno) = sys::ioprio_set_current(prio) {
            return -i64::from(errno);
        }
        let r = run(req, cancel, stop);
        let _ = sys::ioprio_set_current(0);
        return r;
    }
    run(req, cancel, stop)
}

fn run(req: &Request, cancel: &AtomicBool, stop: &AtomicBool) -> i64 {
    let fd = req.fd;
    let off = req.offset as libc::off_t;
    match &req.op {
        Op::Read { buf, len } => {
            let iov = [libc::iovec {
                iov_base: buf.cast(),
                iov_len: *len,
            }];
            rw(fd, &iov, off, req.rw_flags, false)
        }
        Op::Write { buf, len } => {
            let iov = [libc::iovec {
                iov_base: buf.cast_mut().cast(),
                iov_len: *len,
            }];
            rw(fd, &iov, off, req.rw_flags, true)
        }
        Op::Readv { iov } => rw(fd, iov, off, req.rw_flags, false),
        Op::Writev { iov } => rw(fd, iov, off, req.rw_flags, true),
        // SAFETY: plain syscalls on a descriptor number.
        Op::Fsync => ret(unsafe { libc::fsync(fd) } as isize),
        Op::Fdsync => ret(fdatasync(fd) as isize),
        Op::Poll { events } => poll(fd, *events, cancel, stop),
    }
}

#[cfg(target_os = "linux")]
fn fdatasync(fd: i32) -> i32 {
    // SAFETY: plain syscall on a descriptor number.
    unsafe { libc::fdatasync(fd) }
}

#[cfg(not(target_os = "linux"))]
fn fdatasync(fd: i32) -> i32 {
    // SAFETY: plain syscall on a descriptor number (macOS has no public fdatasync).
    unsafe { libc::fsync(fd) }
}

/// One positional transfer. Without flags: `pread`/`pwrite` (or their vectored forms);
/// with flags: `preadv2`/`pwritev2` on Linux, ENOTSUP elsewhere.
fn rw(fd: i32, iov: &[libc::iovec], off: libc::off_t, flags: i32, write: bool) -> i64 {
    let cnt = iov.len() as libc::c_int;
    if flags != 0 {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: the Request contract keeps every iovec valid while this call runs.
            let n = unsafe {
                if write {
                    libc::pwritev2(fd, iov.as_ptr(), cnt, off, flags)
                } else {
                    libc::preadv2(fd, iov.as_ptr(), cnt, off, flags)
                }
            };
            return ret(n);
        }
        #[cfg(not(target_os = "linux"))]
        return -i64::from(libc::ENOTSUP);
    }
    // SAFETY: the Request contract keeps every iovec valid while this call runs.
    let n = unsafe {
        match (write, iov) {
            (false, [one]) => libc::pread(fd, one.iov_base, one.iov_len, off),
            (true, [one]) => libc::pwrite(fd, one.iov_base, one.iov_len, off),
            (false, _) => libc::preadv(fd, iov.as_ptr(), cnt, off),
            (true, _) => libc::pwritev(fd, iov.as_ptr(), cnt, off),
        }
    };
    ret(n)
}

/// `poll(2)` in slices so cancellation and shutdown are noticed; returns the ready mask.
/// A cancelled poll returns 0 (no events), as the kernel's `IOCB_CMD_POLL` does.
fn poll(fd: i32, events: u32, cancel: &AtomicBool, stop: &AtomicBool) -> i64 {
    let mut p = libc::pollfd {
        fd,
        events: events as libc::c_short,
        revents: 0,
    };
    loop {
        if cancel.load(Ordering::Acquire) || stop.load(Ordering::Acquire) {
            return 0;
        }
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&raw mut p, 1, POLL_SLICE_MS) };
        if n < 0 {
            let errno = sys::last_errno();
            if errno == libc::EINTR {
                continue;
            }
            return -i64::from(errno);
        }
        if n > 0 {
            if p.revents & libc::POLLNVAL != 0 {
                return -i64::from(libc::EBADF);
            }
            return i64::from(p.revents as u16);
        }
    }
}
