//! The blocking calls the pool's workers make, one request at a time: positional reads and
//! writes, syncs, path (metadata) calls, and a poll that notices cancellation (the kernel AIO engine also runs a
//! request here, on its own thread, when it has no pool threads).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::request::{Op, Request};
use crate::sys;

/// How often a blocked `poll` looks for cancellation or shutdown, in milliseconds.
const POLL_SLICE_MS: i32 = 50;

/// A count or errno as a completion result: bytes, or `-errno`.
fn res(r: Result<usize, i32>) -> i64 {
    match r {
        Ok(n) => n as i64,
        Err(errno) => -i64::from(errno),
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
    let off = req.offset;
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
        Op::Fsync => res(sys::fsync(fd).map(|()| 0)),
        Op::Fdsync => res(sys::fdatasync(fd).map(|()| 0)),
        Op::Poll { events } => poll(fd, *events, cancel, stop),
        Op::Openat { path, flags, mode } => {
            res(sys::openat(path, *flags, *mode).map(|fd| fd as usize))
        }
        Op::Close => res(sys::close(fd).map(|()| 0)),
        Op::Statx {
            path,
            flags,
            mask,
            buf,
        } => {
            let dirfd = if flags & sys::AT_EMPTY_PATH != 0 {
                fd
            } else {
                libc::AT_FDCWD
            };
            // SAFETY: the Request contract (`Request::statx`) keeps `buf` valid and unused
            // elsewhere while this call runs.
            res(unsafe { sys::statx(dirfd, path, *flags, *mask, *buf) }.map(|()| 0))
        }
        Op::Unlinkat { path, flags } => res(sys::unlinkat(path, *flags).map(|()| 0)),
        Op::Renameat { from, to } => res(sys::renameat(from, to).map(|()| 0)),
        Op::Mkdirat { path, mode } => res(sys::mkdirat(path, *mode).map(|()| 0)),
        Op::Symlinkat { target, path } => res(sys::symlinkat(target, path).map(|()| 0)),
        Op::Linkat { from, to } => res(sys::linkat(from, to).map(|()| 0)),
        Op::Ftruncate { len } => res(sys::ftruncate(fd, *len).map(|()| 0)),
    }
}

/// One positional transfer. Without flags: `pread`/`pwrite` (or their vectored forms);
/// with flags: `preadv2`/`pwritev2` on Linux, ENOTSUP elsewhere.
fn rw(fd: i32, iov: &[libc::iovec], off: i64, flags: i32, write: bool) -> i64 {
    if flags != 0 {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: the Request contract keeps every iovec valid while this call runs.
            let n = unsafe {
                if write {
                    sys::pwritev2(fd, iov, off, flags)
                } else {
                    sys::preadv2(fd, iov, off, flags)
                }
            };
            return res(n);
        }
        #[cfg(not(target_os = "linux"))]
        return -i64::from(libc::ENOTSUP);
    }
    // SAFETY: the Request contract keeps every iovec valid while this call runs.
    let n = unsafe {
        match (write, iov) {
            (false, [one]) => sys::pread(fd, one.iov_base.cast(), one.iov_len, off),
            (true, [one]) => sys::pwrite(fd, one.iov_base.cast(), one.iov_len, off),
            (false, _) => sys::preadv(fd, iov, off),
            (true, _) => sys::pwritev(fd, iov, off),
        }
    };
    res(n)
}

/// `poll(2)` in slices so cancellation and shutdown are noticed; returns the ready mask.
/// A cancelled poll returns 0 (no events), as the kernel's `IOCB_CMD_POLL` does.
fn poll(fd: i32, events: u32, cancel: &AtomicBool, stop: &AtomicBool) -> i64 {
    loop {
        if cancel.load(Ordering::Acquire) || stop.load(Ordering::Acquire) {
            return 0;
        }
        match sys::poll_one(fd, events as libc::c_short, POLL_SLICE_MS) {
            Err(libc::EINTR) | Ok(0) => {}
            Err(errno) => return -i64::from(errno),
            Ok(revents) if revents & libc::POLLNVAL != 0 => return -i64::from(libc::EBADF),
            Ok(revents) => return i64::from(revents as u16),
        }
    }
}
