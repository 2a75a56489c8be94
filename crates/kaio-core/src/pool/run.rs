//! The blocking calls the pool's workers make, one request at a time: positional reads and
//! writes, syncs, path (metadata) calls, and a poll that notices cancellation (the kernel AIO engine also runs a
//! request here, on its own thread, when it has no pool threads).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::request::{write_file, Completion, Op, Request};
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

/// Runs one request on this thread; its completion: bytes, the ready mask, or `-errno`.
#[must_use]
pub fn execute(req: &Request, cancel: &AtomicBool, stop: &AtomicBool) -> Completion {
    if let Op::WriteFile {
        path,
        flags,
        mode,
        buf,
        len,
        sync,
    } = &req.op
    {
        let (res, res2) = whole_write(path, *flags, *mode, (*buf, *len), *sync);
        return Completion {
            user: req.user,
            res,
            res2,
        };
    }
    Completion::new(req.user, execute_one(req, cancel, stop))
}

fn execute_one(req: &Request, cancel: &AtomicBool, stop: &AtomicBool) -> i64 {
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
            // SAFETY: the Request contract (`Request::statx`) keeps `buf` valid and unused
            // elsewhere while this call runs.
            res(unsafe { sys::statx(req.statx_dirfd(), path, *flags, *mask, *buf) }.map(|()| 0))
        }
        Op::Unlinkat { path, flags } => res(sys::unlinkat(path, *flags).map(|()| 0)),
        Op::Renameat { from, to } => res(sys::renameat(from, to).map(|()| 0)),
        Op::Mkdirat { path, mode } => res(sys::mkdirat(path, *mode).map(|()| 0)),
        Op::Symlinkat { target, path } => res(sys::symlinkat(target, path).map(|()| 0)),
        Op::Linkat { from, to } => res(sys::linkat(from, to).map(|()| 0)),
        Op::Ftruncate { len } => res(sys::ftruncate(fd, *len).map(|()| 0)),
        Op::Fallocate { mode, offset, len } => {
            res(sys::fallocate(fd, *mode, *offset, *len).map(|()| 0))
        }
        Op::Fadvise {
            offset,
            len,
            advice,
        } => res(sys::fadvise(fd, *offset, *len, *advice).map(|()| 0)),
        Op::WriteFile { .. } => unreachable!("execute runs whole writes itself"),
        #[cfg(target_os = "linux")]
        Op::CopyFile { src, dst, mode } => super::copy::copy_file(src, dst, *mode),
        #[cfg(not(target_os = "linux"))]
        Op::CopyFile { .. } => -i64::from(libc::ENOSYS),
    }
}

/// [`Op::WriteFile`]: `(bytes, 0)`, or `(-errno, step)` for the step that failed. After a
/// failed write or fsync the descriptor is still closed (its own error then ignored, as
/// node's writeFile does).
fn whole_write(
    path: &std::ffi::CStr,
    flags: i32,
    mode: u32,
    data: (*const u8, usize),
    sync: bool,
) -> (i64, i64) {
    let fail = |errno: i32, step: i64| (-i64::from(errno), step);
    let fd = match sys::openat(path, flags, mode) {
        Ok(fd) => fd,
        Err(e) => return fail(e, write_file::OPEN),
    };
    let (buf, len) = data;
    let mut done = 0;
    while done < len {
        // SAFETY: the Request contract (`Request::write_file`) keeps `buf..buf+len` valid and
        // readable while this call runs.
        match unsafe { sys::write(fd, buf.add(done), len - done) } {
            Ok(n) => done += n,
            Err(libc::EINTR) => {}
            Err(e) => {
                let _ = sys::close(fd);
                return fail(e, write_file::WRITE);
            }
        }
    }
    if sync {
        if let Err(e) = sys::fsync(fd) {
            let _ = sys::close(fd);
            return fail(e, write_file::FSYNC);
        }
    }
    match sys::close(fd) {
        Ok(()) => (done as i64, 0),
        Err(e) => fail(e, write_file::CLOSE),
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
