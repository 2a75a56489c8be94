//! Kernel AIO: ABI structs and `io_*` wrappers. Sizes are pinned by the tests below.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `aio_context_t`: an opaque kernel handle (the address of the completion ring).
pub type AioContextT = libc::c_ulong;

/// `IOCB_CMD_*` opcodes (`aio_abi.h`).
pub const IOCB_CMD_PREAD: u16 = 0;
pub const IOCB_CMD_PWRITE: u16 = 1;
pub const IOCB_CMD_FSYNC: u16 = 2;
pub const IOCB_CMD_FDSYNC: u16 = 3;
/// Since Linux 4.18.
pub const IOCB_CMD_POLL: u16 = 5;
pub const IOCB_CMD_PREADV: u16 = 7;
pub const IOCB_CMD_PWRITEV: u16 = 8;

/// `aio_flags`: notify `aio_resfd` (an eventfd) on completion.
pub const IOCB_FLAG_RESFD: u32 = 1 << 0;
/// `aio_flags`: honour `aio_reqprio` as an `ioprio` value (Linux 5.0).
pub const IOCB_FLAG_IOPRIO: u32 = 1 << 1;

/// `struct iocb` (64 bytes). `aio_key` and `aio_rw_flags` swap places on big-endian targets.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Iocb {
    pub aio_data: u64,
    #[cfg(target_endian = "little")]
    pub aio_key: u32,
    #[cfg(target_endian = "little")]
    pub aio_rw_flags: i32,
    #[cfg(target_endian = "big")]
    pub aio_rw_flags: i32,
    #[cfg(target_endian = "big")]
    pub aio_key: u32,
    pub aio_lio_opcode: u16,
    pub aio_reqprio: i16,
    pub aio_fildes: u32,
    pub aio_buf: u64,
    pub aio_nbytes: u64,
    pub aio_offset: i64,
    pub aio_reserved2: u64,
    pub aio_flags: u32,
    pub aio_resfd: u32,
}

/// `struct io_event` (32 bytes): `res` is bytes transferred or `-errno`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct IoEvent {
    pub data: u64,
    pub obj: u64,
    pub res: i64,
    pub res2: i64,
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `io_setup(2)`: create a context able to hold `nr` requests in flight.
/// Counts against `/proc/sys/fs/aio-max-nr` (EAGAIN past it).
pub fn io_setup(nr: u32) -> io::Result<AioContextT> {
    let mut ctx: AioContextT = 0;
    // SAFETY: `ctx` is a valid, zero-initialised out-pointer, as the kernel requires.
    check(unsafe { libc::syscall(libc::SYS_io_setup, nr as libc::c_long, &raw mut ctx) })?;
    Ok(ctx)
}

/// `io_destroy(2)`: cancels what it can and blocks until every request has completed.
///
/// # Safety
/// `ctx` must come from [`io_setup`] and must not be used afterwards.
pub unsafe fn io_destroy(ctx: AioContextT) -> io::Result<()> {
    // SAFETY: the caller promises `ctx` is live and never used again.
    check(unsafe { libc::syscall(libc::SYS_io_destroy, ctx) }).map(drop)
}

/// `io_submit(2)`: returns how many iocbs the kernel took (a prefix of `iocbs`).
///
/// # Safety
/// Every iocb must describe memory (buffers, iovec arrays) that stays valid and unaliased
/// by Rust until its completion is reaped or the context is destroyed. The iocbs themselves
/// must stay at their addresses until then (`io_cancel` and the event name them by address),
/// and no Rust reference may cover them during the call: the kernel stores `aio_key` in each.
pub unsafe fn io_submit(ctx: AioContextT, iocbs: &mut [*mut Iocb]) -> io::Result<usize> {
    // SAFETY: the pointer array is valid for `len` entries; the caller vouches for the iocbs.
    let n = check(unsafe {
        libc::syscall(
            libc::SYS_io_submit,
            ctx,
            iocbs.len() as libc::c_long,
            iocbs.as_mut_ptr(),
        )
    })?;
    Ok(n as usize)
}

/// `io_getevents(2)` with a zero timeout: never blocks; returns how many events were written.
pub fn io_getevents_nowait(ctx: AioContextT, events: &mut [IoEvent]) -> io::Result<usize> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `events` is writable for `len` entries; `ts` outlives the call. An invalid
    // `ctx` is reported by the kernel as EINVAL, not undefined behaviour.
    let n = check(unsafe {
        libc::syscall(
            libc::SYS_io_getevents,
            ctx,
            0 as libc::c_long,
            events.len() as libc::c_long,
            events.as_mut_ptr(),
            &raw mut ts,
        )
    })?;
    Ok(n as usize)
}

/// `io_cancel(2)`: only POLL requests (and some devices) can be cancelled; regular files give
/// EINVAL. On success the kernel returns `-EINPROGRESS` and posts the event to the ring, which
/// this wrapper reports as `Ok(())`. The kernel matches the iocb by its user address and reads
/// its `aio_key`; it writes nothing there.
///
/// # Safety
/// `iocb` must be valid for reads for the duration of the call (an iocb submitted at that
/// address, for the cancel to find anything). It is a raw pointer because the kernel may be
/// writing that iocb (an `io_submit` on another thread): no Rust reference may cover it.
pub unsafe fn io_cancel(ctx: AioContextT, iocb: *mut Iocb) -> io::Result<()> {
    let mut ev = IoEvent::default();
    // SAFETY: the caller vouches for `iocb`; `ev` is a local the kernel may fill.
    match check(unsafe { libc::syscall(libc::SYS_io_cancel, ctx, iocb, &raw mut ev) }) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `eventfd(2)` with `EFD_CLOEXEC`, blocking reads (the completion thread sleeps on it).
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the returned descriptor is owned by nobody else.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A non-blocking eventfd (for a descriptor an event loop watches).
pub fn eventfd_nonblocking() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the returned descriptor is owned by nobody else.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `read` of an eventfd counter (blocking unless the eventfd is non-blocking); returns the count (0 on EINTR).
pub fn eventfd_read(fd: RawFd) -> io::Result<u64> {
    let mut v: u64 = 0;
    // SAFETY: reading 8 bytes into a local u64.
    let n = unsafe { libc::read(fd, (&raw mut v).cast(), 8) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(v)
}

/// Add `v` to an eventfd counter (wakes a sleeping reader).
pub fn eventfd_write(fd: RawFd, v: u64) -> io::Result<()> {
    // SAFETY: writing 8 bytes from a local u64.
    let n = unsafe { libc::write(fd, (&raw const v).cast(), 8) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An epoll instance (`EPOLL_CLOEXEC`) watching `fd` for `events` (level-triggered; the
/// `poll(2)` bits, which epoll shares): what kernel AIO can poll when it refuses `fd` itself
/// (see `aio/relay.rs`). The errno of `epoll_ctl` (EPERM: a regular file or directory).
pub fn epoll_watching(fd: RawFd, events: u32) -> Result<OwnedFd, i32> {
    // SAFETY: plain syscall; a returned descriptor is owned by nobody else.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(super::last_errno());
    }
    // SAFETY: `ep` was just created and is ours.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    let mut ev = libc::epoll_event { events, u64: 0 };
    // SAFETY: a live epoll descriptor and an event struct that outlives the call.
    if unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &raw mut ev) } < 0 {
        return Err(super::last_errno());
    }
    Ok(ep)
}

/// The events of the one descriptor `ep` watches, if it is ready now (`epoll_wait` with no
/// timeout): `Ok(0)` when it is not.
pub fn epoll_ready(ep: RawFd) -> Result<u32, i32> {
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: room for one event, which outlives the call.
    let n = unsafe { libc::epoll_wait(ep, &raw mut ev, 1, 0) };
    match n {
        n if n < 0 => Err(super::last_errno()),
        0 => Ok(0),
        _ => Ok(ev.events),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_sizes_match_the_kernel() {
        assert_eq!(std::mem::size_of::<Iocb>(), 64);
        assert_eq!(std::mem::size_of::<IoEvent>(), 32);
        assert_eq!(std::mem::offset_of!(Iocb, aio_lio_opcode), 16);
        assert_eq!(std::mem::offset_of!(Iocb, aio_fildes), 20);
        assert_eq!(std::mem::offset_of!(Iocb, aio_buf), 24);
        assert_eq!(std::mem::offset_of!(Iocb, aio_offset), 40);
        assert_eq!(std::mem::offset_of!(Iocb, aio_flags), 56);
        assert_eq!(std::mem::offset_of!(Iocb, aio_resfd), 60);
        assert_eq!(std::mem::offset_of!(IoEvent, res), 16);
    }

    #[test]
    fn setup_and_destroy() {
        let ctx = io_setup(4).expect("io_setup");
        assert_ne!(ctx, 0);
        // SAFETY: fresh context, not used afterwards.
        unsafe { io_destroy(ctx) }.expect("io_destroy");
    }

    #[test]
    fn eventfd_counts_coalesce() {
        use std::os::fd::AsRawFd;
        let fd = eventfd().unwrap();
        eventfd_write(fd.as_raw_fd(), 2).unwrap();
        eventfd_write(fd.as_raw_fd(), 3).unwrap();
        assert_eq!(eventfd_read(fd.as_raw_fd()).unwrap(), 5);
    }
}
