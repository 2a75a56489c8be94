//! Builds the submission entry for a [`Request`] (pure data: nothing is submitted here).
//!
//! Every pointer in the entry is one the request already holds: caller memory (the Request
//! contract keeps it valid until the completion) or the request's own iovec array, which stays
//! in the in-flight slot until the CQE is reaped. Path ops point at the request's own
//! `CString`s, which live in the same slot (the request is kept whole until its CQE).

use io_uring::{opcode, squeue, types};

use crate::request::{Op, Request};

/// Which opcode a request needs, as an index into the engine's support table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Read = 0,
    Write,
    Readv,
    Writev,
    Fsync,
    Poll,
    Openat,
    Close,
    Statx,
    Unlinkat,
    Renameat,
    Mkdirat,
    Symlinkat,
    Linkat,
    Ftruncate,
    Fallocate,
    Fadvise,
    /// No opcode: a whole-file write always runs on the fallback pool (see `Op::WriteFile`).
    WriteFile,
    /// No opcode: a whole-file copy always runs on the fallback pool (see `Op::CopyFile`).
    CopyFile,
}

/// Number of [`Kind`]s.
pub(super) const KINDS: usize = 19;

/// Every [`Kind`], in index order (for the opcode probe).
pub(super) const ALL: [Kind; KINDS] = [
    Kind::Read,
    Kind::Write,
    Kind::Readv,
    Kind::Writev,
    Kind::Fsync,
    Kind::Poll,
    Kind::Openat,
    Kind::Close,
    Kind::Statx,
    Kind::Unlinkat,
    Kind::Renameat,
    Kind::Mkdirat,
    Kind::Symlinkat,
    Kind::Linkat,
    Kind::Ftruncate,
    Kind::Fallocate,
    Kind::Fadvise,
    Kind::WriteFile,
    Kind::CopyFile,
];

impl Kind {
    pub(super) fn of(op: &Op) -> Self {
        match op {
            Op::Read { .. } => Kind::Read,
            Op::Write { .. } => Kind::Write,
            Op::Readv { .. } => Kind::Readv,
            Op::Writev { .. } => Kind::Writev,
            Op::Fsync | Op::Fdsync => Kind::Fsync,
            Op::Poll { .. } => Kind::Poll,
            Op::Openat { .. } => Kind::Openat,
            Op::Close => Kind::Close,
            Op::Statx { .. } => Kind::Statx,
            Op::Unlinkat { .. } => Kind::Unlinkat,
            Op::Renameat { .. } => Kind::Renameat,
            Op::Mkdirat { .. } => Kind::Mkdirat,
            Op::Symlinkat { .. } => Kind::Symlinkat,
            Op::Linkat { .. } => Kind::Linkat,
            Op::Ftruncate { .. } => Kind::Ftruncate,
            Op::Fallocate { .. } => Kind::Fallocate,
            Op::Fadvise { .. } => Kind::Fadvise,
            Op::WriteFile { .. } => Kind::WriteFile,
            Op::CopyFile { .. } => Kind::CopyFile,
        }
    }

    /// The `io_uring` opcode (`IORING_OP_*`) serving this kind; `None` for a kind only the
    /// fallback pool runs.
    pub(super) fn opcode(self) -> Option<u8> {
        Some(match self {
            Kind::Read => opcode::Read::CODE,
            Kind::Write => opcode::Write::CODE,
            Kind::Readv => opcode::Readv::CODE,
            Kind::Writev => opcode::Writev::CODE,
            Kind::Fsync => opcode::Fsync::CODE,
            Kind::Poll => opcode::PollAdd::CODE,
            Kind::Openat => opcode::OpenAt::CODE,
            Kind::Close => opcode::Close::CODE,
            Kind::Statx => opcode::Statx::CODE,
            Kind::Unlinkat => opcode::UnlinkAt::CODE,
            Kind::Renameat => opcode::RenameAt::CODE,
            Kind::Mkdirat => opcode::MkDirAt::CODE,
            Kind::Symlinkat => opcode::SymlinkAt::CODE,
            Kind::Linkat => opcode::LinkAt::CODE,
            Kind::Ftruncate => opcode::Ftruncate::CODE,
            Kind::Fallocate => opcode::Fallocate::CODE,
            Kind::Fadvise => opcode::Fadvise::CODE,
            Kind::WriteFile | Kind::CopyFile => return None,
        })
    }

    /// The kind whose `Op::syscall` name is `name` (for forced fallbacks).
    pub(super) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "read" => Kind::Read,
            "write" => Kind::Write,
            "readv" => Kind::Readv,
            "writev" => Kind::Writev,
            "fsync" | "fdatasync" => Kind::Fsync,
            "poll" => Kind::Poll,
            "open" => Kind::Openat,
            "close" => Kind::Close,
            "stat" | "lstat" | "fstat" => Kind::Statx,
            "unlink" | "rmdir" => Kind::Unlinkat,
            "rename" => Kind::Renameat,
            "mkdir" => Kind::Mkdirat,
            "symlink" => Kind::Symlinkat,
            "link" => Kind::Linkat,
            "ftruncate" => Kind::Ftruncate,
            "fallocate" => Kind::Fallocate,
            "fadvise" => Kind::Fadvise,
            _ => return None,
        })
    }
}

/// Whether the ring can carry `op` as the syscall means it: an fadvise length the 32-bit
/// SQE `len` cannot hold (or a negative one, which `posix_fadvise` refuses) goes to the pool.
pub(super) fn on_ring(op: &Op) -> bool {
    match op {
        Op::Fadvise { len, .. } => u32::try_from(*len).is_ok(),
        _ => true,
    }
}

/// A transfer length as the SQE's 32-bit `len`: longer requests are clamped and complete
/// short (the kernel caps one transfer at `MAX_RW_COUNT`, just under 2 GiB, anyway).
fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// The directory path ops resolve against.
const CWD: types::Fd = types::Fd(libc::AT_FDCWD);

/// The entry for `req` with `user_data`. `offset` is used as is: the caller has refused
/// negative offsets (`io_uring` reads -1 as "the file position").
pub(super) fn build(req: &Request, user_data: u64) -> squeue::Entry {
    let fd = types::Fd(req.fd);
    let off = req.offset as u64;
    let prio = req.priority.unwrap_or(0);
    // RWF_HIPRI asks for completion polling, which only an IOPOLL ring does (others answer
    // EINVAL for it); kernel AIO accepts and drops it, and so does kaio here.
    let flags = req.rw_flags & !crate::sys::RWF_HIPRI;
    let e = match &req.op {
        Op::Read { buf, len } => opcode::Read::new(fd, *buf, len32(*len))
            .offset(off)
            .rw_flags(flags)
            .ioprio(prio)
            .build(),
        Op::Write { buf, len } => opcode::Write::new(fd, *buf, len32(*len))
            .offset(off)
            .rw_flags(flags)
            .ioprio(prio)
            .build(),
        Op::Readv { iov } => opcode::Readv::new(fd, iov.as_ptr(), iov.len() as u32)
            .offset(off)
            .rw_flags(flags)
            .ioprio(prio)
            .build(),
        Op::Writev { iov } => opcode::Writev::new(fd, iov.as_ptr(), iov.len() as u32)
            .offset(off)
            .rw_flags(flags)
            .ioprio(prio)
            .build(),
        Op::Fsync => opcode::Fsync::new(fd).build(),
        Op::Fdsync => opcode::Fsync::new(fd)
            .flags(types::FsyncFlags::DATASYNC)
            .build(),
        Op::Poll { events } => opcode::PollAdd::new(fd, *events).build(),
        // Straight to io-wq (IOSQE_ASYNC): tried inline, the kernel opens with O_NONBLOCK and
        // clears it afterwards, so a FIFO's open would not wait for its other end as open(2)
        // does (and would release a writer waiting for a reader). Cached opens of regular
        // files are kaio's fast path's, on the JS thread, before any ring (src/fs/cached.ts).
        Op::Openat { path, flags, mode } => opcode::OpenAt::new(CWD, path.as_ptr())
            .flags(flags | libc::O_CLOEXEC)
            .mode(*mode)
            .build()
            .flags(squeue::Flags::ASYNC),
        Op::Close => opcode::Close::new(fd).build(),
        Op::Statx {
            path,
            flags,
            mask,
            buf,
        } => {
            // fstat names the descriptor itself (with an empty path).
            let dirfd = types::Fd(req.statx_dirfd());
            // `types::statx` is the crate's opaque stand-in for `struct statx`.
            opcode::Statx::new(dirfd, path.as_ptr(), buf.cast::<types::statx>())
                .flags(*flags)
                .mask(*mask)
                .build()
        }
        Op::Unlinkat { path, flags } => opcode::UnlinkAt::new(CWD, path.as_ptr())
            .flags(*flags)
            .build(),
        Op::Renameat { from, to } => {
            opcode::RenameAt::new(CWD, from.as_ptr(), CWD, to.as_ptr()).build()
        }
        Op::Mkdirat { path, mode } => opcode::MkDirAt::new(CWD, path.as_ptr()).mode(*mode).build(),
        Op::Symlinkat { target, path } => {
            opcode::SymlinkAt::new(CWD, target.as_ptr(), path.as_ptr()).build()
        }
        Op::Linkat { from, to } => {
            opcode::LinkAt::new(CWD, from.as_ptr(), CWD, to.as_ptr()).build()
        }
        // A negative length reaches the kernel as a huge one, which it refuses (EINVAL), as
        // ftruncate(2) refuses a negative one.
        Op::Ftruncate { len } => opcode::Ftruncate::new(fd, *len as u64).build(),
        // As for ftruncate, negative numbers come back negative (the kernel reads both as
        // loff_t) and are refused as fallocate(2) refuses them (EINVAL).
        Op::Fallocate { mode, offset, len } => opcode::Fallocate::new(fd, *len as u64)
            .offset(*offset as u64)
            .mode(*mode)
            .build(),
        // The crate puts the length in the SQE's 32-bit `len`: only lengths that fit come
        // here (`on_ring`); the rest run on the pool.
        Op::Fadvise {
            offset,
            len,
            advice,
        } => opcode::Fadvise::new(fd, *len, *advice)
            .offset(*offset as u64)
            .build(),
        Op::WriteFile { .. } | Op::CopyFile { .. } => {
            unreachable!("whole-file writes and copies never reach the ring")
        }
    };
    e.user_data(user_data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_names_agree() {
        for op in [
            Op::Read {
                buf: std::ptr::null_mut(),
                len: 0,
            },
            Op::Writev { iov: Box::new([]) },
            Op::Fdsync,
            Op::Poll { events: 1 },
        ] {
            assert_eq!(Kind::from_name(op.syscall()), Some(Kind::of(&op)));
        }
        for (i, k) in ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
        let path = || std::ffi::CString::new("p").unwrap();
        for (op, name) in [
            (Op::Close, "close"),
            (
                Op::Statx {
                    path: path(),
                    flags: libc::AT_SYMLINK_NOFOLLOW,
                    mask: 0,
                    buf: std::ptr::null_mut(),
                },
                "lstat",
            ),
            (
                Op::Unlinkat {
                    path: path(),
                    flags: libc::AT_REMOVEDIR,
                },
                "rmdir",
            ),
            (Op::Ftruncate { len: 0 }, "ftruncate"),
            (
                Op::Fallocate {
                    mode: 0,
                    offset: 0,
                    len: 1,
                },
                "fallocate",
            ),
            (
                Op::Fadvise {
                    offset: 0,
                    len: 0,
                    advice: 0,
                },
                "fadvise",
            ),
        ] {
            assert_eq!(op.syscall(), name);
            assert_eq!(Kind::from_name(name), Some(Kind::of(&op)));
        }
        assert_eq!(Kind::from_name("chmod"), None);
        assert_eq!(len32(usize::MAX), u32::MAX);
    }

    #[test]
    fn entries_carry_user_data_and_opcode() {
        let r = Request::new(1, 3, 0, Op::Fdsync);
        let e = build(&r, 42);
        assert_eq!(e.get_user_data(), 42);
        assert_eq!(e.get_opcode(), u32::from(opcode::Fsync::CODE));
        let fadvise = |len| Op::Fadvise {
            offset: 0,
            len,
            advice: 0,
        };
        assert!(on_ring(&fadvise(0)) && on_ring(&fadvise(i64::from(u32::MAX))));
        assert!(!on_ring(&fadvise(1 << 32)) && !on_ring(&fadvise(-1)));
    }
}
