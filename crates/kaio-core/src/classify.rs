//! The descriptor check every kernel engine runs before a positional request reaches the
//! kernel (shared by the kernel AIO and `io_uring` engines).

use crate::request::{Op, Request};
use crate::sys;
use std::sync::OnceLock;

/// Where a positional request goes once [`classify`] or [`check_type`] passed it.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Route {
    /// To the kernel engine; for [`classify`], whether the completion must signal the eventfd.
    Kernel(bool),
    /// To the context's thread pool, as `pread`/`pwrite`: a file of a pseudo file system
    /// (see [`is_pseudo_fs`]), whose positional semantics only those calls keep, or a
    /// buffered transfer too long to copy on the caller's thread ([`copies_long`]).
    Pool,
}

/// Longest buffered transfer the kernel engines may copy on the caller's thread (the JS
/// thread): kernel AIO and `io_uring` both copy page-cache data inside the submitting call,
/// about 1 ms per MiB here, so one 256 MiB read of a cached file blocked the event loop for
/// 160-190 ms. Longer ones go to the pool, whose threads copy as node:fs's do.
pub(crate) const INLINE_COPY_MAX: usize = 1 << 20;

/// Whether `req` moves more than [`INLINE_COPY_MAX`] bytes: then a buffered one goes to the
/// pool (an `O_DIRECT` one copies nothing and stays with the kernel engine). Not one the
/// caller marked `RWF_NOWAIT`: that asks for the kernel engine's non-blocking answer
/// (`EAGAIN`), whatever the size.
pub(crate) fn copies_long(req: &Request) -> bool {
    req.len() > INLINE_COPY_MAX && req.rw_flags & sys::RWF_NOWAIT == 0
}

/// The result a request gets without reaching the kernel, if any. Only files whose reads
/// cannot block go to the kernel: regular files, block devices, directories (for the errors
/// below) and character devices other than terminals (USB gadget endpoints, /dev/zero).
/// Pipes, FIFOs, sockets, terminals and anonymous inodes (eventfd, timerfd, ...) would block
/// inside `io_submit`: they get ESPIPE, as pread gives them. Regular files of pseudo file
/// systems (procfs, sysfs, ...) go to the pool ([`Route::Pool`]).
///
/// Otherwise says whether the completion must signal the eventfd: not for a buffered
/// (no `O_DIRECT`) read or write of a regular file or block device, which completes inside
/// `io_submit` (see the module docs); character devices may complete later (USB gadgets do).
pub(crate) fn classify(req: &Request) -> Result<Route, i64> {
    check(req, true)
}

/// [`classify`] without the signalling verdict, for engines that do not need it (`io_uring`
/// signals every completion itself): one `fstat` (and an `fstatfs` for a file on an
/// anonymous device), no `fcntl`. `Route::Kernel(true)` when it passes.
pub(crate) fn check_type(req: &Request) -> Result<Route, i64> {
    check(req, false)
}

fn check(req: &Request, want_direct: bool) -> Result<Route, i64> {
    let st = sys::fstat(req.fd).map_err(|errno| -i64::from(errno))?;
    match st.st_mode & libc::S_IFMT {
        // Kernel AIO answers EINVAL for a directory read; pread says EISDIR. Writes are left
        // to the kernel, which checks the access mode first (EBADF), as pwrite.
        libc::S_IFDIR if matches!(req.op, Op::Read { .. } | Op::Readv { .. }) => {
            Err(-i64::from(libc::EISDIR))
        }
        libc::S_IFREG if libc::major(st.st_dev) == 0 && is_pseudo_fs(req.fd) => Ok(Route::Pool),
        libc::S_IFREG | libc::S_IFBLK => {
            let long = copies_long(req);
            // One `fcntl`, and only when something depends on it.
            let direct = (want_direct || long) && sys::is_direct(req.fd);
            Ok(if long && !direct {
                Route::Pool
            } else {
                Route::Kernel(!want_direct || direct)
            })
        }
        libc::S_IFDIR => Ok(Route::Kernel(true)),
        // A device's data is copied in the call too (/dev/urandom, /dev/zero).
        libc::S_IFCHR if !sys::is_tty(req.fd) => Ok(if copies_long(req) {
            Route::Pool
        } else {
            Route::Kernel(true)
        }),
        _ => Err(-i64::from(libc::ESPIPE)),
    }
}

/// Whether `fd`'s file system makes files out of kernel callbacks (procfs, sysfs, debugfs,
/// tracefs, cgroup, configfs, securityfs, bpf, pstore, efivarfs, selinuxfs): their `pread`
/// and `pwrite` differ from what the kernel engines do. `seq_file` files refuse `pwrite` with
/// ESPIPE, but an `io_uring` write reaches their handler anyway and lands wherever it writes
/// (`/proc/self/comm` renames the process); kernel AIO refuses reads of files without
/// `read_iter` with EINVAL. Only called for files on an anonymous device (major 0), where
/// these live, so ext4 or xfs files on a disk never pay the `fstatfs`.
fn is_pseudo_fs(fd: i32) -> bool {
    const PSEUDO: [i64; 13] = [
        0x9fa0,      // PROC_SUPER_MAGIC
        0x6265_6572, // SYSFS_MAGIC
        0x6462_6720, // DEBUGFS_MAGIC
        0x7472_6163, // TRACEFS_MAGIC
        0x0027_e0eb, // CGROUP_SUPER_MAGIC
        0x6367_7270, // CGROUP2_SUPER_MAGIC
        0x6265_6570, // CONFIGFS_MAGIC
        0x7363_6673, // SECURITYFS_MAGIC
        0xcafe_4a11, // BPF_FS_MAGIC
        0x6165_676c, // PSTOREFS_MAGIC
        0xde5e_81e4, // EFIVARFS_MAGIC
        0xf97c_ff8c, // SELINUX_MAGIC
        0x4341_5d53, // SMACK_MAGIC
    ];
    sys::fs_type(fd).is_ok_and(|t| PSEUDO.contains(&t))
}

/// Whether kernel engines try cached reads on the spot ([`read_cached`]): yes unless
/// `KAIO_READ_NOW=0` (read once; for measuring the difference).
pub(crate) fn read_now_default() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("KAIO_READ_NOW").is_none_or(|v| v != "0"))
}

/// What [`read_cached`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Finished: the read's result.
    Done(i64),
    /// Not finished (or not tried): the engine runs the request.
    Engine,
    /// The file cannot honour `RWF_NOWAIT` (EOPNOTSUPP: tmpfs, procfs, sysfs): the engine
    /// runs it, and the caller may stop trying this descriptor.
    Refused,
}

/// A buffered read whose data is all in the page cache, done on the caller's thread with
/// one `preadv2(RWF_NOWAIT)`: what `io_uring`'s own inline issue does (a non-blocking
/// attempt on the submitting thread), without the ring round trip, the descriptor check and
/// the eventfd signal. [`Attempt::Done`] only when the attempt finished the request: every
/// byte copied, or a short read that stopped at the end of a regular file. Otherwise it is
/// left to the engine, which gives its own result and errors (EAGAIN: not cached; a pipe's or a
/// terminal's ESPIPE; a directory's EISDIR; a file that cannot honour NOWAIT; a read of a
/// cached prefix). `O_DIRECT` descriptors are left alone (a NOWAIT direct read still waits
/// for the device), as are empty reads, flags kaio does not know, and reads with an I/O
/// priority (the kernel checks it at submission: EINVAL for a bad class, EPERM for RT
/// without privileges; `preadv2` has no place for one). A short read of a character device
/// is final (its data may be consumed: reading again could lose it), as the ring's would be;
/// of a block device it goes to the engine.
pub(crate) fn read_cached(req: &Request) -> Attempt {
    let one;
    let iov: &[libc::iovec] = match &req.op {
        Op::Read { buf, len } => {
            one = [libc::iovec {
                iov_base: buf.cast(),
                iov_len: *len,
            }];
            &one
        }
        Op::Readv { iov } => iov,
        _ => return Attempt::Engine,
    };
    let want: usize = iov.iter().map(|v| v.iov_len).sum();
    if want == 0
        || want > INLINE_COPY_MAX
        || req.offset < 0
        || req.rw_flags & !sys::RWF_SUPPORTED != 0
        || req.priority.is_some()
        || sys::is_direct(req.fd)
    {
        return Attempt::Engine;
    }
    // SAFETY: the Request contract keeps every iovec's memory valid and unused elsewhere
    // until the request's completion, which has not been made yet.
    match unsafe { sys::preadv2(req.fd, iov, req.offset, req.rw_flags | sys::RWF_NOWAIT) } {
        Ok(n) if n == want || short_is_final(req.fd, req.offset, n) => Attempt::Done(n as i64),
        Err(e) if e == libc::EOPNOTSUPP => Attempt::Refused,
        _ => Attempt::Engine,
    }
}

/// Whether a short read of `n` bytes at `offset` stands: a regular file's that reached the
/// end of the file, or any character device's; not a block device's (or a regular file's
/// cached prefix), which the engine reads again whole.
fn short_is_final(fd: i32, offset: i64, n: usize) -> bool {
    sys::fstat(fd).is_ok_and(|st| match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => st.st_size <= offset + n as i64,
        libc::S_IFCHR => true,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    fn read(fd: i32, offset: i64, buf: &mut [u8]) -> Request {
        // SAFETY: `buf` outlives every use of the request in these tests.
        unsafe { Request::read(1, fd, offset, buf.as_mut_ptr(), buf.len()) }
    }

    fn cached_file(len: usize) -> std::fs::File {
        let mut f = tempfile();
        f.write_all(&vec![7u8; len]).unwrap();
        f.sync_all().unwrap();
        f
    }

    fn tempfile() -> std::fs::File {
        let dir = std::env::temp_dir();
        let path = dir.join(format!(
            "kaio-classify-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    #[test]
    fn a_cached_read_completes_on_the_spot() {
        let f = cached_file(8192);
        let mut buf = vec![0u8; 4096];
        assert_eq!(
            read_cached(&read(f.as_raw_fd(), 4096, &mut buf)),
            Attempt::Done(4096)
        );
        assert!(buf.iter().all(|&b| b == 7));
    }

    #[test]
    fn a_short_read_counts_only_at_the_end_of_the_file() {
        let f = cached_file(6000);
        let mut buf = vec![0u8; 4096];
        assert_eq!(
            read_cached(&read(f.as_raw_fd(), 4096, &mut buf)),
            Attempt::Done(1904)
        );
        assert_eq!(
            read_cached(&read(f.as_raw_fd(), 9000, &mut buf)),
            Attempt::Done(0)
        );
    }

    #[test]
    fn what_it_cannot_finish_is_left_to_the_engine() {
        let mut buf = vec![0u8; 4096];
        // Not cached: EAGAIN.
        let f = cached_file(1 << 20);
        let fd = f.as_raw_fd();
        // The advice misses pages still in another CPU's LRU batch now and then (tests run
        // in parallel): a few tries, one of which must find the page gone.
        let left = (0..10).any(|_| {
            // SAFETY: plain advice on a descriptor we own (written back, so pages can go).
            unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
            std::thread::sleep(std::time::Duration::from_millis(5));
            read_cached(&read(fd, 512 << 10, &mut buf)) == Attempt::Engine
        });
        assert!(left, "every read of an evicted page completed on the spot");
        // A pipe (ESPIPE), a bad descriptor, an empty read, a negative offset.
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        assert_eq!(read_cached(&read(fds[0], 0, &mut buf)), Attempt::Engine);
        assert_eq!(read_cached(&read(-1, 0, &mut buf)), Attempt::Engine);
        let f = cached_file(100);
        assert_eq!(
            read_cached(&read(f.as_raw_fd(), 0, &mut buf[..0])),
            Attempt::Engine
        );
        assert_eq!(
            read_cached(&read(f.as_raw_fd(), -1, &mut buf)),
            Attempt::Engine
        );
        let mut prio = read(f.as_raw_fd(), 0, &mut buf);
        prio.priority = Some(7 << 13);
        assert_eq!(read_cached(&prio), Attempt::Engine);
        // SAFETY: closing the pipe made above.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }

    #[test]
    fn a_character_device_read_is_final_and_tmpfs_refuses() {
        let zero = std::fs::File::open("/dev/zero").unwrap();
        let mut buf = vec![1u8; 4096];
        assert_eq!(
            read_cached(&read(zero.as_raw_fd(), 0, &mut buf)),
            Attempt::Done(4096)
        );
        assert!(buf.iter().all(|&b| b == 0));
        // /dev/null reads 0 bytes, short and final (not read again by the engine).
        let null = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(
            read_cached(&read(null.as_raw_fd(), 0, &mut buf)),
            Attempt::Done(0)
        );
        // tmpfs cannot honour RWF_NOWAIT here (6.18); if it can, the read simply completes.
        if let Ok(f) = tempfile::tempfile_in("/dev/shm") {
            let mut f = f;
            f.write_all(&[3u8; 4096]).unwrap();
            let r = read_cached(&read(f.as_raw_fd(), 0, &mut buf));
            assert!(r == Attempt::Refused || r == Attempt::Done(4096), "{r:?}");
        }
    }

    #[test]
    fn o_direct_descriptors_are_left_alone() {
        let f = cached_file(8192);
        // SAFETY: F_SETFL with an integer flag set on a descriptor we own.
        let ok = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, libc::O_DIRECT) } == 0;
        if !ok {
            return; // the temp directory's file system refuses O_DIRECT
        }
        let mut buf = vec![0u8; 4096];
        assert_eq!(
            read_cached(&read(f.as_raw_fd(), 0, &mut buf)),
            Attempt::Engine
        );
    }
}
