//! The cached fast path: file calls that finish on the calling thread when, and only when,
//! the kernel can answer them from memory, and otherwise say `EAGAIN` so the caller takes the
//! engine's path instead.
//!
//! This is what `io_uring` does inline for `IORING_OP_OPENAT` (lookup with `LOOKUP_CACHED`, the
//! file opened `O_NONBLOCK`, the flag cleared afterwards) and for a buffered read (the page
//! cache copy, `IOCB_NOWAIT`), done from user space so it costs no ring round trip at all:
//! - `openat2(2)` with `RESOLVE_CACHED` fails with `EAGAIN` unless every path component is in
//!   the dentry cache; `O_CREAT`, `O_TRUNC` and `O_TMPFILE` are never cached (they write).
//! - Before it opens anything, `open` looks the path up with `O_PATH` and `statx`: only a
//!   regular file is opened here (a FIFO's or a device's open has effects of its own), and
//!   `O_NONBLOCK` at open covers a file swapped for a FIFO in between; anything else is left
//!   to the engine (node's open semantics).
//! - `preadv2(2)` with `RWF_NOWAIT` copies what the page cache holds and fails with `EAGAIN`
//!   rather than wait for the disk.
//! - `statx(2)` on an `O_PATH` descriptor reads the in-memory inode.
//! - Only on local file systems: a network or FUSE file system may wait for its server even
//!   when the lookup is cached (`->open`, attribute revalidation), so a descriptor on one of
//!   those (told apart by its mount ID, `stx_mnt_id`: see `is_local`) is `EAGAIN` too, and
//!   the statx is `AT_STATX_DONT_SYNC` (which local file systems ignore) so that it never waits
//!   before the check; `open`'s look-up finds a remote file before any `->open`.
//!
//! Every function returns the positive errno on failure. Callers treat `EAGAIN` (and, for
//! reads, `EOPNOTSUPP` from a file system without `RWF_NOWAIT`) as "take the slow path".

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::last_errno;

/// `EAGAIN`: the kernel would have had to wait (or the call is not one this path takes).
pub const WOULD_BLOCK: i32 = libc::EAGAIN;

/// `statx(2)`'s mask for what `stat(2)` returns plus the birth time, as libuv asks.
pub const STATX_MASK: u32 = 0xfff;

/// `openat2(AT_FDCWD, path, { flags, mode, resolve })`.
fn openat2(path: &CStr, flags: i32, mode: u32, resolve: u64) -> Result<RawFd, i32> {
    // SAFETY: all-zero is a valid open_how (plain integers; libc marks it non-exhaustive).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.mode = u64::from(mode);
    how.resolve = resolve;
    // SAFETY: `path` is NUL-terminated and `how` a valid open_how of the size passed; the
    // kernel reads both during the call only.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            &raw const how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r as RawFd)
    }
}

/// `close(2)`, its result ignored: on Linux the descriptor is gone whatever it returns, and
/// a descriptor opened read-only has nothing to write back.
pub fn close(fd: RawFd) {
    let _ = super::close(fd);
}

/// `statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC)` into `out`, if `fd` is on a local file
/// system (else `WOULD_BLOCK`).
pub fn fstatx(fd: RawFd, out: &mut libc::statx) -> Result<(), i32> {
    // SAFETY: `out` is a valid, exclusive statx for the call.
    unsafe {
        super::statx(
            fd,
            c"",
            libc::AT_EMPTY_PATH | libc::AT_STATX_DONT_SYNC,
            STATX_MASK | mount_id_mask(),
            out,
        )
    }?;
    if is_local(out) {
        Ok(())
    } else {
        Err(WOULD_BLOCK)
    }
}

/// An all-zero statx, for [`fstatx`] and the rest to fill.
#[must_use]
pub fn empty_statx() -> libc::statx {
    // SAFETY: all-zero is a valid statx (plain integers).
    unsafe { std::mem::zeroed() }
}

/// File system types whose calls may wait for something other than the local disk: those
/// whose lookups and attributes are revalidated with a server or a daemon (network and
/// cluster file systems, and every FUSE one, `virtiofs` included), where `statx` with
/// `AT_STATX_DONT_SYNC` would answer from a stale inode that node's `stat` refreshes. An
/// overlay is local for the files that carry its own device (see [`Locality::Stacked`]); a bind
/// mount is as local as what it shows.
fn is_remote_type(fstype: &str) -> bool {
    const REMOTE: [&str; 20] = [
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "ceph",
        "glusterfs",
        "afs",
        "coda",
        "lustre",
        "virtiofs",
        "gfs2",
        "ocfs2",
        "davfs",
        "orangefs",
        "gpfs",
        "beegfs",
        "vboxsf",
        "ncpfs",
    ];
    // "fuse", "fuseblk" and "fuse.<subtype>" (sshfs, s3fs, ntfs-3g: a daemon answers).
    fstype.starts_with("fuse") || REMOTE.contains(&fstype)
}

/// What a mount says of the files `statx` finds on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Locality {
    Local,
    Remote,
    /// A stacking file system (overlay, aufs, ecryptfs, shiftfs) with this device: its own
    /// files are as local as the mount, but a file shown from a layer on another file system
    /// reports that layer's device (an overlay without `xino`: a lower layer that may be NFS),
    /// and the mount ID cannot tell that layer's type, so such a file is not local.
    Stacked {
        major: u32,
        minor: u32,
    },
}

impl Locality {
    fn of(fstype: &str, major: u32, minor: u32) -> Self {
        if is_remote_type(fstype) {
            Locality::Remote
        } else if matches!(fstype, "overlay" | "aufs" | "ecryptfs" | "shiftfs") {
            Locality::Stacked { major, minor }
        } else {
            Locality::Local
        }
    }

    /// Whether the file `st` describes, found on a mount of this locality, is local.
    fn holds(self, st: &libc::statx) -> bool {
        match self {
            Locality::Local => true,
            Locality::Remote => false,
            Locality::Stacked { major, minor } => {
                st.stx_dev_major == major && st.stx_dev_minor == minor
            }
        }
    }
}

/// One line of `/proc/self/mountinfo` (proc(5)): its mount ID (the first field, what
/// `statx` reports as `stx_mnt_id`) and its locality, by the file system type after the
/// ` - ` separator and the device (the third field, `major:minor`).
fn mountinfo_line(line: &str) -> Option<(u64, Locality)> {
    let mut fields = line.split(' ');
    let id = fields.next()?.parse().ok()?;
    let (major, minor) = fields.nth(1)?.split_once(':')?;
    let fstype = line.split(" - ").nth(1)?.split(' ').next()?;
    Some((
        id,
        Locality::of(fstype, major.parse().ok()?, minor.parse().ok()?),
    ))
}

/// How long a mount ID missing from the table waits before a miss reads the table again.
const REREAD_AFTER: Duration = Duration::from_secs(1);

/// Which mounts are local, by (old, `STATX_MNT_ID`) mount ID, from `/proc/self/mountinfo`:
/// where the kernel has no unique mount IDs (before 6.8), or `statmount(2)` is refused.
///
/// Keyed by mount ID, not device number: anonymous devices (major 0: NFS, FUSE, tmpfs,
/// overlay, btrfs subvolumes) are handed out again after an unmount, so a table keyed by
/// device would call a newly mounted NFS export local if it got a tmpfs's old number, and
/// the device `statx` reports need not be the mount's at all (a btrfs subvolume's, an
/// overlay's file from a lower layer). Mount IDs are reused too (lowest free), so the table
/// is read again whenever the namespace's mount table changed: `poll(2)` on the open
/// mountinfo file says `POLLPRI` once after each mount, unmount or move (proc(5)), and one
/// such poll runs before every answer. An ID still missing (a mount in another namespace,
/// reached through `/proc/<pid>/root`, or one seen mid-mount) re-reads the table at most once
/// per [`REREAD_AFTER`] and is never local.
struct Mounts {
    /// `/proc/self/mountinfo`, open; `None` without procfs (then nothing is local).
    file: Option<File>,
    local: HashMap<u64, Locality>,
    read_at: Instant,
}

impl Mounts {
    fn open() -> Self {
        let mut m = Mounts {
            file: File::open("/proc/self/mountinfo").ok(),
            local: HashMap::new(),
            read_at: Instant::now(),
        };
        // The open took the namespace's event count: a change from now on polls as one.
        m.read();
        m
    }

    fn read(&mut self) {
        self.read_at = Instant::now();
        self.local.clear();
        let mut text = String::new();
        let Some(file) = &mut self.file else { return };
        if file
            .rewind()
            .and_then(|()| file.read_to_string(&mut text))
            .is_err()
        {
            // Unreadable: nothing is known, so nothing is local.
            return;
        }
        for (id, local) in text.lines().filter_map(mountinfo_line) {
            self.local.insert(id, local);
        }
    }

    /// Whether the mount table changed since the last poll (and so since the last read).
    fn changed(&self) -> bool {
        let Some(file) = &self.file else { return false };
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one valid pollfd, timeout 0: the call only writes `revents`.
        let n = unsafe { libc::poll(&raw mut pfd, 1, 0) };
        // A failed poll cannot say "unchanged".
        n < 0 || pfd.revents & (libc::POLLPRI | libc::POLLERR) != 0
    }

    fn locality(&mut self, mnt_id: u64) -> Locality {
        if self.changed() {
            self.read();
        }
        if let Some(&l) = self.local.get(&mnt_id) {
            return l;
        }
        if self.read_at.elapsed() >= REREAD_AFTER {
            self.read();
        }
        self.local.get(&mnt_id).copied().unwrap_or(Locality::Remote)
    }
}

static MOUNTS: Mutex<Option<Mounts>> = Mutex::new(None);

/// `statmount(2)` (Linux 6.8), by the number every architecture kaio ships for has for it
/// (the shared table of new system calls).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const SYS_STATMOUNT: libc::c_long = 457;
/// `STATMOUNT_FS_TYPE`: the file system type, as a string after the struct.
const STATMOUNT_FS_TYPE: u64 = 0x20;
/// `sizeof(struct statmount)`, where its strings start (new fields come out of its spare
/// words, so it stays this size).
const STATMOUNT_SIZE: usize = 512;

/// `struct mnt_id_req` as of 6.8 (`MNT_ID_REQ_SIZE_VER0`, 24 bytes).
#[repr(C)]
struct MntIdReq {
    size: u32,
    spare: u32,
    mnt_id: u64,
    param: u64,
}

/// A `struct statmount` and room for a type name after it.
#[repr(C, align(8))]
struct StatmountBuf([u8; STATMOUNT_SIZE + 256]);

/// `STATMOUNT_SB_BASIC`: the superblock's device (and magic and flags).
const STATMOUNT_SB_BASIC: u64 = 0x1;

/// The file system type and device of the mount with unique ID `id`
/// (`STATX_MNT_ID_UNIQUE`), from `statmount(2)`; `ENOENT` for a mount of another namespace.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn mount_info(id: u64) -> Result<(String, u32, u32), i32> {
    let req = MntIdReq {
        size: std::mem::size_of::<MntIdReq>() as u32,
        spare: 0,
        mnt_id: id,
        param: STATMOUNT_FS_TYPE | STATMOUNT_SB_BASIC,
    };
    let mut buf = StatmountBuf([0; STATMOUNT_SIZE + 256]);
    // SAFETY: `req` is a valid mnt_id_req of the size it says, `buf` is writable for the
    // length passed; the kernel uses both during the call only.
    let r = unsafe {
        libc::syscall(
            SYS_STATMOUNT,
            &raw const req,
            buf.0.as_mut_ptr(),
            buf.0.len(),
            0,
        )
    };
    if r < 0 {
        return Err(last_errno());
    }
    let b = &buf.0;
    let word = |at: usize| u32::from_ne_bytes(b[at..at + 4].try_into().unwrap_or_default());
    // struct statmount: mask at 8, sb_dev_major at 16, sb_dev_minor at 20, fs_type at 36.
    let mask = u64::from_ne_bytes(b[8..16].try_into().unwrap_or_default());
    let want = STATMOUNT_FS_TYPE | STATMOUNT_SB_BASIC;
    if mask & want != want {
        return Err(libc::EINVAL);
    }
    let name = b
        .get(STATMOUNT_SIZE + word(36) as usize..)
        .unwrap_or_default();
    let name = CStr::from_bytes_until_nul(name).map_err(|_| libc::EOVERFLOW)?;
    Ok((name.to_string_lossy().into_owned(), word(16), word(20)))
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn mount_info(_id: u64) -> Result<(String, u32, u32), i32> {
    Err(libc::ENOSYS)
}

/// Unique mount ID → local (`STATX_MNT_ID_UNIQUE`, Linux 6.8): such an ID is never handed out
/// again while the system runs, and a mount keeps its file system, so an answer holds for
/// good and no table needs watching. A mount `statmount` does not find (another namespace's)
/// is not local.
static UNIQUE: Mutex<Option<HashMap<u64, Locality>>> = Mutex::new(None);

/// The `statx` mask bit for the mount ID the fast path uses: `STATX_MNT_ID_UNIQUE` where the
/// kernel (6.8) reports it and `statmount(2)` answers for it (a seccomp filter may refuse
/// that call), else `STATX_MNT_ID` and the mountinfo table ([`Mounts`]). Decided once.
fn mount_id_mask() -> u32 {
    static MASK: OnceLock<u32> = OnceLock::new();
    *MASK.get_or_init(|| {
        let mut st = empty_statx();
        // SAFETY: `st` is a valid, exclusive statx for the call.
        let unique = unsafe {
            super::statx(
                libc::AT_FDCWD,
                c"/",
                libc::AT_STATX_DONT_SYNC,
                libc::STATX_MNT_ID_UNIQUE,
                &raw mut st,
            )
        }
        .is_ok()
            && st.stx_mask & libc::STATX_MNT_ID_UNIQUE != 0
            && mount_info(st.stx_mnt_id).is_ok();
        if unique {
            libc::STATX_MNT_ID_UNIQUE
        } else {
            libc::STATX_MNT_ID
        }
    })
}

/// Whether the mount `statx` filled `st` from is a local file system's, by whichever mount ID
/// it reported; with neither (a kernel before 5.8, which `RESOLVE_CACHED`, 5.12, rules out
/// anyway), never.
fn is_local(st: &libc::statx) -> bool {
    if st.stx_mask & libc::STATX_MNT_ID_UNIQUE != 0 {
        let mut guard = UNIQUE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = guard.get_or_insert_with(HashMap::new);
        if let Some(&l) = known.get(&st.stx_mnt_id) {
            return l.holds(st);
        }
        let l = match mount_info(st.stx_mnt_id) {
            Ok((fstype, major, minor)) => Locality::of(&fstype, major, minor),
            // Another namespace's mount, or one outside this process's root: for good.
            Err(libc::ENOENT | libc::EPERM) => Locality::Remote,
            // Anything else (ENOMEM) may pass: not local this time, asked again next time.
            Err(_) => return false,
        };
        known.insert(st.stx_mnt_id, l);
        return l.holds(st);
    }
    if st.stx_mask & libc::STATX_MNT_ID == 0 {
        return false;
    }
    let mut guard = MOUNTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    guard
        .get_or_insert_with(Mounts::open)
        .locality(st.stx_mnt_id)
        .holds(st)
}

fn is_regular(st: &libc::statx) -> bool {
    u32::from(st.stx_mode) & libc::S_IFMT == libc::S_IFREG
}

/// `stat` (or `lstat`, `follow = false`) of `path` if its lookup is cached.
pub fn stat(path: &CStr, follow: bool, out: &mut libc::statx) -> Result<(), i32> {
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    let fd = openat2(
        path,
        libc::O_PATH | libc::O_CLOEXEC | nofollow,
        0,
        libc::RESOLVE_CACHED,
    )?;
    let r = fstatx(fd, out);
    close(fd);
    r
}

/// Flags whose open writes the directory or the file, which `RESOLVE_CACHED` refuses.
const WRITING: i32 = libc::O_CREAT | libc::O_TRUNC | libc::O_TMPFILE;
/// The status flags `F_SETFL` may set (the rest of an open's flags stay as opened).
/// (`O_ASYNC` is left out: open(2) ignores it, and `F_SETFL` would turn it on.)
const STATUS: i32 = libc::O_APPEND | libc::O_DIRECT | libc::O_NOATIME | libc::O_NONBLOCK;

/// Opens a regular file with `flags` (plus `O_CLOEXEC`, as libuv) if its lookup is cached;
/// fills `out` with its stat. Anything but a regular file is closed again: `WOULD_BLOCK`.
pub fn open(path: &CStr, flags: i32, out: &mut libc::statx) -> Result<RawFd, i32> {
    open_regular(path, flags, out, flags & libc::O_NONBLOCK == 0)
}

/// [`open`] for a descriptor closed again after [`read_all_cached`]: `O_NONBLOCK` stays set
/// (a regular file's reads ignore it), which saves the `fcntl`.
pub fn open_to_read(path: &CStr, flags: i32, out: &mut libc::statx) -> Result<RawFd, i32> {
    open_regular(path, flags, out, false)
}

/// An `errno`-like answer of [`open`] and [`kind`] for "there is a file, and it is not a local
/// regular file": the caller opens it the way node:fs does (a FIFO's open waits for its other
/// end), not on an engine whose workers must finish before it can be dropped.
pub const NOT_REGULAR: i32 = 1_000_010;

/// Whether `path` (followed unless `O_NOFOLLOW` is in `flags`) is a local regular file, from
/// the caches: `Ok(())`, `NOT_REGULAR`, `WOULD_BLOCK` or the lookup's errno.
pub fn kind(path: &CStr, flags: i32) -> Result<(), i32> {
    let mut probe = empty_statx();
    match stat(path, flags & libc::O_NOFOLLOW == 0, &mut probe) {
        Ok(()) if is_regular(&probe) => Ok(()),
        Ok(()) => Err(NOT_REGULAR),
        Err(e) => Err(e),
    }
}

fn open_regular(path: &CStr, flags: i32, out: &mut libc::statx, clear: bool) -> Result<RawFd, i32> {
    // Read-only only: a write open runs the file system's `->open` for writing, which can
    // copy a whole file up (overlayfs) or read the quota file (ext4) first.
    if flags & WRITING != 0 || flags & libc::O_ACCMODE != libc::O_RDONLY {
        return Err(WOULD_BLOCK);
    }
    // Look before opening: only a local regular file is opened here. Opening anything else
    // has effects of its own even with O_NONBLOCK (a FIFO's read side releases a writer
    // waiting in open(2), which would then meet EPIPE once this closes; a device's open may
    // rewind a tape or raise a modem line), and a remote file's `->open` waits for its server.
    kind(path, flags)?;
    let fd = openat2(
        path,
        flags | libc::O_CLOEXEC | libc::O_NONBLOCK,
        0,
        libc::RESOLVE_CACHED,
    )?;
    let ready = fstatx(fd, out).and_then(|()| {
        if !is_regular(out) {
            return Err(WOULD_BLOCK);
        }
        // SAFETY: F_SETFL with an int argument on a descriptor this function owns.
        if clear && unsafe { libc::fcntl(fd, libc::F_SETFL, flags & STATUS) } < 0 {
            return Err(last_errno());
        }
        Ok(())
    });
    match ready {
        Ok(()) => Ok(fd),
        Err(e) => {
            close(fd);
            Err(e)
        }
    }
}

/// Reads all `len` bytes of `fd` from offset 0 into `buf` from the page cache, or fails with
/// `WOULD_BLOCK` (some page is not cached, or the file changed size), `EOPNOTSUPP` (no
/// `RWF_NOWAIT` on this file system) or the read's errno.
///
/// # Safety
/// `buf..buf+len` must be valid for writes, and not otherwise used, during the call.
pub unsafe fn read_all_cached(fd: RawFd, buf: *mut u8, len: usize) -> Result<(), i32> {
    let iov = libc::iovec {
        iov_base: buf.cast(),
        iov_len: len,
    };
    // SAFETY: one iovec over the caller's buffer.
    let n = unsafe { libc::preadv2(fd, &raw const iov, 1, 0, super::RWF_NOWAIT) };
    if n < 0 {
        return Err(last_errno());
    }
    // A short read is a partly cached file, or one that shrank: the engine's path reads it
    // as node does.
    if n as usize == len {
        Ok(())
    } else {
        Err(WOULD_BLOCK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;

    fn c(p: &std::path::Path) -> CString {
        CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("kaio-cached-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn stat_matches_std() {
        let d = tmp("stat");
        let f = d.join("a");
        std::fs::File::create(&f)
            .unwrap()
            .write_all(b"hello")
            .unwrap();
        let _ = std::fs::metadata(&f).unwrap(); // the lookup is cached now
        let mut out = empty_statx();
        stat(&c(&f), true, &mut out).unwrap();
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!(libc::makedev(out.stx_dev_major, out.stx_dev_minor), m.dev());
        assert_eq!(u32::from(out.stx_mode), m.mode());
        assert_eq!(out.stx_ino, m.ino());
        assert_eq!(out.stx_size, 5);
        assert_eq!(out.stx_mtime.tv_sec, m.mtime());
        assert_eq!(i64::from(out.stx_mtime.tv_nsec), m.mtime_nsec());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn lstat_sees_the_link() {
        let d = tmp("lstat");
        let f = d.join("a");
        std::fs::write(&f, b"x").unwrap();
        let l = d.join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        let _ = std::fs::symlink_metadata(&l).unwrap();
        let mut out = empty_statx();
        stat(&c(&l), false, &mut out).unwrap();
        assert_eq!(u32::from(out.stx_mode) & libc::S_IFMT, libc::S_IFLNK);
        // Following it needs the link's body; once read, that is cached too.
        let _ = std::fs::read_link(&l).unwrap();
        let _ = std::fs::metadata(&l).unwrap();
        stat(&c(&l), true, &mut out).unwrap();
        assert_eq!(u32::from(out.stx_mode) & libc::S_IFMT, libc::S_IFREG);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_is_enoent_and_writing_flags_are_refused() {
        let d = tmp("missing");
        let f = d.join("nope");
        let _ = std::fs::metadata(&f); // a negative dentry
        let mut out = empty_statx();
        assert_eq!(stat(&c(&f), true, &mut out), Err(libc::ENOENT));
        assert_eq!(
            open(&c(&f), libc::O_RDONLY | libc::O_CREAT, &mut out),
            Err(WOULD_BLOCK)
        );
        assert_eq!(
            open(&c(&f), libc::O_WRONLY | libc::O_TRUNC, &mut out),
            Err(WOULD_BLOCK)
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn open_reads_a_cached_file_and_refuses_a_fifo() {
        let d = tmp("open");
        let f = d.join("a");
        std::fs::write(&f, b"0123456789").unwrap();
        let _ = std::fs::read(&f).unwrap();
        let mut out = empty_statx();
        let fd = open(&c(&f), libc::O_RDONLY, &mut out).unwrap();
        // O_NONBLOCK was cleared again.
        // SAFETY: F_GETFL on an open descriptor.
        assert_eq!(
            unsafe { libc::fcntl(fd, libc::F_GETFL) } & libc::O_NONBLOCK,
            0
        );
        let mut buf = vec![0u8; 10];
        // SAFETY: `buf` is ours and 10 bytes long.
        unsafe { read_all_cached(fd, buf.as_mut_ptr(), 10) }.unwrap();
        assert_eq!(&buf, b"0123456789");
        // Asking for more than the file holds is a short read: the slow path's business.
        let mut big = vec![0u8; 20];
        // SAFETY: as above.
        assert_eq!(
            unsafe { read_all_cached(fd, big.as_mut_ptr(), 20) },
            Err(WOULD_BLOCK)
        );
        close(fd);
        let p = d.join("fifo");
        let cp = c(&p);
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(cp.as_ptr(), 0o644) }, 0);
        let _ = std::fs::symlink_metadata(&p);
        // No writer: a blocking open would wait forever; this one returns at once.
        assert_eq!(open(&cp, libc::O_RDONLY, &mut out), Err(NOT_REGULAR));
        // A writer waiting for a reader is not released (and then left without one) by it.
        let (tx, rx) = std::sync::mpsc::channel();
        let wp = p.clone();
        let writer = std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(&wp);
            tx.send(()).unwrap();
            f.map(|_| ())
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(open(&cp, libc::O_RDONLY, &mut out), Err(NOT_REGULAR));
        assert_eq!(kind(&cp, 0), Err(NOT_REGULAR));
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(100))
                .is_err(),
            "the writer was released"
        );
        let reader = std::fs::File::open(&p).unwrap();
        rx.recv().unwrap();
        writer.join().unwrap().unwrap();
        drop(reader);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_page_not_in_the_cache_is_would_block() {
        let d = tmp("cold");
        let f = d.join("a");
        std::fs::write(&f, vec![5u8; 1 << 20]).unwrap();
        let file = std::fs::File::open(&f).unwrap();
        file.sync_all().unwrap();
        // SAFETY: all-zero is a valid statfs; the call writes it.
        let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: an open descriptor and a valid out-pointer.
        assert_eq!(unsafe { libc::fstatfs(file.as_raw_fd(), &raw mut sfs) }, 0);
        let mut buf = vec![0u8; 1 << 20];
        let mut attempt = || {
            // SAFETY: advice on an open descriptor; written back above, so the pages can go.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            let mut out = empty_statx();
            let fd = open(&c(&f), libc::O_RDONLY, &mut out).unwrap();
            // SAFETY: `buf` is ours and 1 MiB long.
            let r = unsafe { read_all_cached(fd, buf.as_mut_ptr(), 1 << 20) };
            close(fd);
            r
        };
        if sfs.f_type == libc::TMPFS_MAGIC {
            // tmpfs keeps its pages whatever the advice: the read simply succeeds.
            assert_eq!(attempt(), Ok(()));
            assert!(buf.iter().all(|&b| b == 5));
        } else {
            // The advice misses pages still in another CPU's LRU batch now and then: a few
            // tries, one of which must find a page gone.
            let blocked = (0..10).any(|_| {
                let r = attempt();
                assert!(r == Ok(()) || r == Err(WOULD_BLOCK), "{r:?}");
                std::thread::sleep(std::time::Duration::from_millis(5));
                r == Err(WOULD_BLOCK)
            });
            assert!(
                blocked,
                "every page stayed cached after POSIX_FADV_DONTNEED"
            );
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    fn statx_of(p: &std::path::Path) -> libc::statx {
        let mut out = empty_statx();
        // SAFETY: `out` is a valid, exclusive statx for the call.
        unsafe {
            crate::sys::statx(
                libc::AT_FDCWD,
                &c(p),
                libc::AT_STATX_DONT_SYNC,
                libc::STATX_MNT_ID,
                &raw mut out,
            )
        }
        .unwrap();
        out
    }

    #[test]
    fn mnt_id_req_is_the_kernels_size() {
        assert_eq!(std::mem::size_of::<MntIdReq>(), 24);
    }

    #[test]
    fn statmount_names_the_same_type_as_mountinfo() {
        if mount_id_mask() != libc::STATX_MNT_ID_UNIQUE {
            eprintln!("skipped: no STATX_MNT_ID_UNIQUE or statmount (Linux 6.8)");
            return;
        }
        let t = std::env::temp_dir();
        let old = statx_of(&t).stx_mnt_id;
        let mut st = empty_statx();
        // SAFETY: `st` is a valid, exclusive statx for the call.
        unsafe {
            crate::sys::statx(
                libc::AT_FDCWD,
                &c(&t),
                0,
                libc::STATX_MNT_ID_UNIQUE,
                &raw mut st,
            )
        }
        .unwrap();
        assert_ne!(st.stx_mask & libc::STATX_MNT_ID_UNIQUE, 0);
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = text
            .lines()
            .find(|l| l.split(' ').next() == Some(&old.to_string()))
            .unwrap();
        let fstype = line.split(" - ").nth(1).unwrap().split(' ').next().unwrap();
        let dev = line.split(' ').nth(2).unwrap();
        let (name, major, minor) = mount_info(st.stx_mnt_id).unwrap();
        assert_eq!(
            (name.as_str(), format!("{major}:{minor}")),
            (fstype, dev.to_string())
        );
        assert!(is_local(&st));
        assert_eq!(mount_info(u64::MAX), Err(libc::ENOENT));
    }

    #[test]
    fn mountinfo_knows_the_temp_dir() {
        assert!(is_local(&statx_of(&std::env::temp_dir())));
        let mut unknown = statx_of(&std::env::temp_dir());
        unknown.stx_mnt_id = u64::MAX;
        assert!(!is_local(&unknown));
        // A kernel without STATX_MNT_ID (before 5.8) leaves it out of the mask: not local.
        unknown.stx_mask &= !libc::STATX_MNT_ID;
        assert!(!is_local(&unknown));
    }

    #[test]
    fn remote_types_from_mountinfo_lines() {
        let line = |id: u32, fstype: &str| {
            format!("{id} 29 0:52 / /mnt/x\\040y rw,relatime shared:7 master:1 - {fstype} srv:/e rw,vers=4.2")
        };
        for fstype in [
            "nfs",
            "nfs4",
            "cifs",
            "smb3",
            "fuse",
            "fuseblk",
            "fuse.sshfs",
            "fuse.s3fs",
            "9p",
            "ceph",
            "gfs2",
            "ocfs2",
            "afs",
            "glusterfs",
            "lustre",
            "virtiofs",
        ] {
            assert_eq!(
                mountinfo_line(&line(77, fstype)),
                Some((77, Locality::Remote)),
                "{fstype}"
            );
        }
        for fstype in [
            "ext4", "xfs", "btrfs", "tmpfs", "proc", "sysfs", "devtmpfs", "zfs", "f2fs",
        ] {
            assert_eq!(
                mountinfo_line(&line(78, fstype)),
                Some((78, Locality::Local)),
                "{fstype}"
            );
        }
        // A stacking file system keeps its device: only its own files are local.
        let overlay = Locality::Stacked {
            major: 0,
            minor: 52,
        };
        assert_eq!(mountinfo_line(&line(79, "overlay")), Some((79, overlay)));
        let mut st = empty_statx();
        st.stx_dev_minor = 52;
        assert!(overlay.holds(&st));
        st.stx_dev_minor = 53;
        assert!(!overlay.holds(&st));
        // No optional fields; a garbled line is skipped rather than guessed at.
        assert_eq!(
            mountinfo_line("25 1 8:1 / / rw - ext4 /dev/sda1 rw"),
            Some((25, Locality::Local))
        );
        assert_eq!(mountinfo_line("26 1 8 / / rw - ext4 /dev/sda1 rw"), None);
        assert_eq!(mountinfo_line("garbage"), None);
        assert_eq!(mountinfo_line("x 1 8:1 / / rw - ext4 /dev/sda1 rw"), None);
    }

    /// `mount(2)` for the test; `false` where it cannot run (not root, no mount namespace).
    fn mount(fstype: &str, source: &str, target: &std::path::Path, data: &str) -> bool {
        let (fstype, source) = (CString::new(fstype).unwrap(), CString::new(source).unwrap());
        let data = CString::new(data).unwrap();
        // SAFETY: NUL-terminated strings, read during the call only.
        let r = unsafe {
            libc::mount(
                source.as_ptr(),
                c(target).as_ptr(),
                fstype.as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        r == 0
    }

    fn umount(target: &std::path::Path) {
        // SAFETY: a NUL-terminated path.
        assert_eq!(
            unsafe { libc::umount2(c(target).as_ptr(), libc::MNT_DETACH) },
            0
        );
    }

    /// `stat` from the caches, its lookup made cached first.
    fn cached_stat(p: &std::path::Path) -> Result<libc::statx, i32> {
        let _ = std::fs::symlink_metadata(p);
        let mut out = empty_statx();
        stat(&c(p), false, &mut out).map(|()| out)
    }

    #[test]
    fn an_overlay_file_from_another_file_system_is_not_local() {
        // An overlay over two file systems (without xino) gives a lower layer's files that
        // layer's device, or one of its own, not the overlay's; their mount is the overlay's,
        // whose type says nothing of the layer (which could be NFS): not local. Its own
        // directories carry its device: local.
        let d = tmp("overlay");
        let (l, u, m) = (d.join("l"), d.join("u"), d.join("m"));
        for p in [&l, &u, &m] {
            std::fs::create_dir(p).unwrap();
        }
        if !mount("tmpfs", "kaio-l", &l, "") {
            eprintln!("skipped: mounting needs root");
            return;
        }
        assert!(mount("tmpfs", "kaio-u", &u, ""));
        std::fs::create_dir(u.join("up")).unwrap();
        std::fs::create_dir(u.join("work")).unwrap();
        std::fs::write(l.join("f"), b"x").unwrap();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            l.display(),
            u.join("up").display(),
            u.join("work").display()
        );
        let st = mount("overlay", "kaio-ov", &m, &opts).then(|| {
            // By the unique mount ID where there is one, and by the mountinfo table.
            let file = (cached_stat(&m.join("f")), is_local(&statx_of(&m.join("f"))));
            let root = (cached_stat(&m).is_ok(), is_local(&statx_of(&m)));
            umount(&m);
            (file, root)
        });
        umount(&u);
        umount(&l);
        std::fs::remove_dir_all(&d).unwrap();
        match st {
            Some(((file, file_by_table), root)) => {
                assert_eq!(file.map(|_| ()), Err(WOULD_BLOCK));
                assert!(!file_by_table);
                assert_eq!(root, (true, true));
            }
            None => eprintln!("skipped: no overlayfs"),
        }
    }

    #[test]
    fn a_fuse_mount_where_a_tmpfs_was_is_remote() {
        let d = tmp("reuse");
        let m = d.join("m");
        std::fs::create_dir(&m).unwrap();
        if !mount("tmpfs", "kaio-t", &m, "") {
            eprintln!("skipped: mounting needs root");
            return;
        }
        cached_stat(&m).unwrap();
        let tmpfs = statx_of(&m);
        assert!(is_local(&tmpfs));
        umount(&m);
        // A FUSE mount whose daemon never answers: a statx with AT_STATX_DONT_SYNC of its
        // root sends it nothing, so nothing here waits. It likely gets the tmpfs's device
        // number and (old, mountinfo) mount ID again, the lowest free; never its unique ID.
        let Ok(fuse) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
        else {
            eprintln!("skipped: no /dev/fuse");
            return;
        };
        let opts = format!(
            "fd={},rootmode=40000,user_id=0,group_id=0",
            fuse.as_raw_fd()
        );
        if !mount("fuse", "kaio-fuse", &m, &opts) {
            eprintln!("skipped: no FUSE");
            return;
        }
        // Nothing that would ask the daemon (a plain stat would wait for it forever).
        let st = statx_of(&m);
        let mut out = empty_statx();
        let cached = stat(&c(&m), false, &mut out);
        let by_table = is_local(&st);
        drop(fuse); // aborts the connection
        umount(&m);
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(cached, Err(WOULD_BLOCK), "FUSE counted as local");
        assert!(!by_table, "FUSE counted as local by the mountinfo table");
        eprintln!(
            "tmpfs {}:{} mount {}, fuse {}:{} mount {}",
            tmpfs.stx_dev_major,
            tmpfs.stx_dev_minor,
            tmpfs.stx_mnt_id,
            st.stx_dev_major,
            st.stx_dev_minor,
            st.stx_mnt_id
        );
    }
}
