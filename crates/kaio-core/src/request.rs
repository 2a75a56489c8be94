//! Requests and completions, shared by every backend.
//!
//! A request carries raw pointers to memory it does not own: whoever builds one promises that
//! memory stays valid until the request's [`Completion`] has been handed back (or the backend
//! has been dropped, which waits for the kernel and the workers). That promise is the
//! `# Safety` contract of the buffer constructors below.

use std::ffi::CString;

/// Which step of an [`Op::WriteFile`] failed, in its completion's `res2`.
pub mod write_file {
    pub const OPEN: i64 = 1;
    pub const WRITE: i64 = 2;
    pub const FSYNC: i64 = 3;
    pub const CLOSE: i64 = 4;
}

/// Result codes beyond the errno range, for outcomes that are not the kernel's.
pub mod res {
    /// The backend was closed before the request reached the kernel or a worker.
    pub const CLOSED: i64 = -1_000_001;
    /// The request was withdrawn (aborted) before it was submitted.
    pub const CANCELLED: i64 = -1_000_002;
}

/// What a request does.
#[derive(Debug)]
pub enum Op {
    /// `pread`/`IOCB_CMD_PREAD` into `len` bytes at `buf`.
    Read { buf: *mut u8, len: usize },
    /// `pwrite`/`IOCB_CMD_PWRITE` from `len` bytes at `buf`.
    Write { buf: *const u8, len: usize },
    /// `preadv`/`IOCB_CMD_PREADV` into each iovec in turn.
    Readv { iov: Box<[libc::iovec]> },
    /// `pwritev`/`IOCB_CMD_PWRITEV` from each iovec in turn.
    Writev { iov: Box<[libc::iovec]> },
    /// `fsync`/`IOCB_CMD_FSYNC`.
    Fsync,
    /// `fdatasync`/`IOCB_CMD_FDSYNC`.
    Fdsync,
    /// `poll`/`IOCB_CMD_POLL` for the `events` mask; resolves the ready mask.
    Poll { events: u32 },
    // Path (metadata) ops: no file offset, no descriptor check. Paths are owned (they live
    // with the request until its completion); relative ones resolve against the current
    // directory (`AT_FDCWD`).
    /// `openat(AT_FDCWD, path, flags | O_CLOEXEC, mode)`; resolves the new descriptor.
    Openat {
        path: CString,
        flags: i32,
        mode: u32,
    },
    /// `close(req.fd)`.
    Close,
    /// `statx(dirfd, path, flags, mask, buf)`, `dirfd` being `req.fd` with `AT_EMPTY_PATH`
    /// (fstat) and `AT_FDCWD` otherwise; the kernel fills the struct at `buf` (caller memory,
    /// as a read buffer: see [`Request::statx`]).
    Statx {
        path: CString,
        flags: i32,
        mask: u32,
        buf: *mut crate::sys::Statx,
    },
    /// `unlinkat(AT_FDCWD, path, flags)`; `AT_REMOVEDIR` makes it `rmdir`.
    Unlinkat { path: CString, flags: i32 },
    /// `renameat(AT_FDCWD, from, AT_FDCWD, to)`.
    Renameat { from: CString, to: CString },
    /// `mkdirat(AT_FDCWD, path, mode)`.
    Mkdirat { path: CString, mode: u32 },
    /// `symlinkat(target, AT_FDCWD, path)`.
    Symlinkat { target: CString, path: CString },
    /// `linkat(AT_FDCWD, from, AT_FDCWD, to, 0)`.
    Linkat { from: CString, to: CString },
    /// `ftruncate(req.fd, len)`.
    Ftruncate { len: i64 },
    /// `fallocate(req.fd, mode, offset, len)`: allocates (or, with `FALLOC_FL_PUNCH_HOLE` /
    /// `FALLOC_FL_ZERO_RANGE`, frees or zeroes) `len` bytes at `offset`. Changes the file, so
    /// never cancelled once started.
    Fallocate { mode: i32, offset: i64, len: i64 },
    /// `posix_fadvise(req.fd, offset, len, advice)`: an access-pattern hint (`len` 0: to the
    /// end of the file). Changes no data; the kernel answers ESPIPE for a pipe or FIFO.
    Fadvise { offset: i64, len: i64, advice: i32 },
    /// A whole `writeFile` in one request, on a worker thread on every engine (its steps can
    /// all wait on the disk, and `close` of a rewritten file starts its writeback): `openat`
    /// `path` with `flags | O_CLOEXEC` and `mode`, `write(2)` all `len` bytes at `buf` from
    /// the file position (short writes continued), `fsync` when `sync`, `close`. Resolves the
    /// bytes written; a failure is `-errno` with the failed step in `res2` ([`write_file`]).
    WriteFile {
        path: CString,
        flags: i32,
        mode: u32,
        buf: *const u8,
        len: usize,
        sync: bool,
    },
    /// `copyFile(src, dst, mode)` in one request on a worker (libuv's `uv__fs_copyfile`: open
    /// both, truncate, chmod, `FICLONE` or `copy_file_range`, close, remove a failed copy);
    /// `mode` holds node's `COPYFILE_*` flags. Resolves 0.
    CopyFile {
        src: CString,
        dst: CString,
        mode: i32,
    },
}

impl Op {
    /// The node:fs-style syscall name reported with errors.
    #[must_use]
    pub fn syscall(&self) -> &'static str {
        match self {
            Op::Read { .. } => "read",
            Op::Write { .. } => "write",
            Op::Readv { .. } => "readv",
            Op::Writev { .. } => "writev",
            Op::Fsync => "fsync",
            Op::Fdsync => "fdatasync",
            Op::Poll { .. } => "poll",
            // A whole-file write's first step (`res2` names the step that failed).
            Op::Openat { .. } | Op::WriteFile { .. } => "open",
            Op::CopyFile { .. } => "copyfile",
            Op::Close => "close",
            Op::Statx { flags, .. } if flags & crate::sys::AT_EMPTY_PATH != 0 => "fstat",
            Op::Statx { flags, .. } if flags & libc::AT_SYMLINK_NOFOLLOW != 0 => "lstat",
            Op::Statx { .. } => "stat",
            Op::Unlinkat { flags, .. } if flags & libc::AT_REMOVEDIR != 0 => "rmdir",
            Op::Unlinkat { .. } => "unlink",
            Op::Renameat { .. } => "rename",
            Op::Mkdirat { .. } => "mkdir",
            Op::Symlinkat { .. } => "symlink",
            Op::Linkat { .. } => "link",
            Op::Ftruncate { .. } => "ftruncate",
            Op::Fallocate { .. } => "fallocate",
            Op::Fadvise { .. } => "fadvise",
        }
    }

    /// Whether the op is a path or descriptor op (open, close, stat, unlink, rename, mkdir,
    /// symlink, link, ftruncate, fallocate, fadvise): no `req.offset`, no descriptor check
    /// (the syscall itself answers for pipes and the like), and kernel AIO has no opcode for
    /// it.
    #[must_use]
    pub fn is_metadata(&self) -> bool {
        matches!(
            self,
            Op::Openat { .. }
                | Op::Close
                | Op::Statx { .. }
                | Op::Unlinkat { .. }
                | Op::Renameat { .. }
                | Op::Mkdirat { .. }
                | Op::Symlinkat { .. }
                | Op::Linkat { .. }
                | Op::Ftruncate { .. }
                | Op::Fallocate { .. }
                | Op::Fadvise { .. }
                | Op::WriteFile { .. }
                | Op::CopyFile { .. }
        )
    }

    /// Whether the op is a `poll` (which may wait for hours: see [`poll_limit`]).
    #[must_use]
    pub fn is_poll(&self) -> bool {
        matches!(self, Op::Poll { .. })
    }

    /// Whether the op moves data at a file offset (and so cannot go to a pipe or socket).
    #[must_use]
    pub fn is_positional(&self) -> bool {
        matches!(
            self,
            Op::Read { .. } | Op::Write { .. } | Op::Readv { .. } | Op::Writev { .. }
        )
    }
}

/// How many of an engine's `slots` (ring entries, iocbs, pool workers) polls may hold at
/// once: half, and at least one. A poll may wait for hours; without a limit, polls that fill
/// every slot leave the reads and writes queued behind them waiting as long. An engine of
/// one slot gives it to whichever request comes first.
#[must_use]
pub(crate) fn poll_limit(slots: usize) -> usize {
    (slots / 2).max(1)
}

/// Takes the next request to start from `queue`: the first, or, when that is a poll and
/// polls hold their [`poll_limit`] (`polls_full`, asked only then), the first that is not a
/// poll (the polls keep their order and start as slots free up).
pub(crate) fn next_to_start<T>(
    queue: &mut std::collections::VecDeque<T>,
    polls_full: impl FnOnce() -> bool,
    req: impl Fn(&T) -> &Request,
) -> Option<T> {
    if !req(queue.front()?).op.is_poll() || !polls_full() {
        return queue.pop_front();
    }
    let i = queue.iter().position(|t| !req(t).op.is_poll())?;
    queue.remove(i)
}

/// One request, tagged with the caller's `user` id (echoed in its [`Completion`]).
#[derive(Debug)]
pub struct Request {
    pub user: u64,
    pub fd: i32,
    pub offset: i64,
    pub op: Op,
    /// `RWF_*` flags (see [`crate::sys`]).
    pub rw_flags: i32,
    /// An `ioprio` value, sent with `IOCB_FLAG_IOPRIO` when set.
    pub priority: Option<u16>,
}

// SAFETY: the raw pointers inside `Op` are plain addresses of memory whose lifetime the
// constructor's caller guarantees (see the module docs); no thread-affine data is held.
unsafe impl Send for Request {}

impl Request {
    /// The directory descriptor a [`Op::Statx`] resolves against: the request's own
    /// descriptor with `AT_EMPTY_PATH` (fstat), else the current directory.
    #[must_use]
    pub fn statx_dirfd(&self) -> i32 {
        match &self.op {
            Op::Statx { flags, .. } if flags & crate::sys::AT_EMPTY_PATH != 0 => self.fd,
            _ => libc::AT_FDCWD,
        }
    }

    /// A request without buffers.
    #[must_use]
    pub fn new(user: u64, fd: i32, offset: i64, op: Op) -> Self {
        Self {
            user,
            fd,
            offset,
            op,
            rw_flags: 0,
            priority: None,
        }
    }

    /// A read into `len` bytes at `buf`.
    ///
    /// # Safety
    /// `buf..buf+len` must stay valid, writable and otherwise unused until this request's
    /// completion is delivered or the backend is dropped.
    #[must_use]
    pub unsafe fn read(user: u64, fd: i32, offset: i64, buf: *mut u8, len: usize) -> Self {
        Self::new(user, fd, offset, Op::Read { buf, len })
    }

    /// A write of `len` bytes from `buf`.
    ///
    /// # Safety
    /// `buf..buf+len` must stay valid and readable until this request's completion is
    /// delivered or the backend is dropped.
    #[must_use]
    pub unsafe fn write(user: u64, fd: i32, offset: i64, buf: *const u8, len: usize) -> Self {
        Self::new(user, fd, offset, Op::Write { buf, len })
    }

    /// A vectored read or write over `iov`.
    ///
    /// # Safety
    /// Every iovec must describe memory that stays valid (and writable, for reads) until this
    /// request's completion is delivered or the backend is dropped.
    #[must_use]
    pub unsafe fn vectored(
        user: u64,
        fd: i32,
        offset: i64,
        iov: Box<[libc::iovec]>,
        write: bool,
    ) -> Self {
        let op = if write {
            Op::Writev { iov }
        } else {
            Op::Readv { iov }
        };
        Self::new(user, fd, offset, op)
    }

    /// A `statx` of `path` (or, with `AT_EMPTY_PATH`, of descriptor `fd`) into `*buf`.
    ///
    /// # Safety
    /// `buf` must stay valid for writes of `size_of::<sys::Statx>()` bytes, and otherwise
    /// unused, until this request's completion is delivered or the backend is dropped.
    #[must_use]
    pub unsafe fn statx(
        user: u64,
        fd: i32,
        path: CString,
        flags: i32,
        mask: u32,
        buf: *mut crate::sys::Statx,
    ) -> Self {
        Self::new(
            user,
            fd,
            0,
            Op::Statx {
                path,
                flags,
                mask,
                buf,
            },
        )
    }

    /// A whole-file write (see [`Op::WriteFile`]).
    ///
    /// # Safety
    /// `buf..buf+len` must stay valid and readable until this request's completion is
    /// delivered or the backend is dropped.
    #[must_use]
    pub unsafe fn write_file(
        user: u64,
        path: CString,
        flags: i32,
        mode: u32,
        data: (*const u8, usize),
        sync: bool,
    ) -> Self {
        let (buf, len) = data;
        Self::new(
            user,
            -1,
            0,
            Op::WriteFile {
                path,
                flags,
                mode,
                buf,
                len,
                sync,
            },
        )
    }

    /// Total bytes the request moves (0 for sync, poll and metadata ops).
    #[must_use]
    pub fn len(&self) -> usize {
        match &self.op {
            Op::Read { len, .. } | Op::Write { len, .. } => *len,
            Op::Readv { iov } | Op::Writev { iov } => iov.iter().map(|v| v.iov_len).sum(),
            _ => 0,
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A finished request: `res` is the byte count (or ready mask), or `-errno`, or one of
/// [`res`]'s codes; `res2` is the kernel's second result (normally 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub user: u64,
    pub res: i64,
    pub res2: i64,
}

impl Completion {
    #[must_use]
    pub fn new(user: u64, res: i64) -> Self {
        Self { user, res, res2: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn polls_hold_at_most_half_the_slots() {
        assert_eq!(
            [1, 2, 3, 4, 128].map(poll_limit),
            [1, 1, 1, 2, 64],
            "half, at least one"
        );
        let poll = |user| Request::new(user, 0, 0, Op::Poll { events: 1 });
        let sync = |user| Request::new(user, 0, 0, Op::Fsync);
        let mut q: VecDeque<Request> = [poll(1), poll(2), sync(3), poll(4), sync(5)].into();
        let users = |q: &VecDeque<Request>| q.iter().map(|r| r.user).collect::<Vec<_>>();
        // Room for polls: the queue's order.
        assert_eq!(
            next_to_start(&mut q, || false, |r| r).map(|r| r.user),
            Some(1)
        );
        // Polls at their limit: the requests behind them, polls keeping their order.
        assert_eq!(
            next_to_start(&mut q, || true, |r| r).map(|r| r.user),
            Some(3)
        );
        assert_eq!(
            next_to_start(&mut q, || true, |r| r).map(|r| r.user),
            Some(5)
        );
        assert!(next_to_start(&mut q, || true, |r| r).is_none());
        assert_eq!(users(&q), [2, 4]);
        assert_eq!(
            next_to_start(&mut q, || false, |r| r).map(|r| r.user),
            Some(2)
        );
    }
}
