//! `io_uring`-specific behaviour: wake-ups, overflow, cancel, close, drop, fallback,
//! callback mailbox, credentials. The shared behaviour is in `engine.rs`.
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use std::os::unix::fs::OpenOptionsExt;

use kaio_core::uring::{self, UringContext, UringOptions};
use kaio_core::{res, Completion, Engine, Mailbox, Op, Request};

const BLOCK: usize = 4096;

fn available() -> bool {
    let p = uring::probe();
    if !p.available {
        eprintln!("io_uring tests skipped: {}", p.reason);
    }
    p.available
}

/// A loop-driven context plus its mailbox.
fn looped(capacity: u32, opts: UringOptions) -> (UringContext, Arc<Mailbox>) {
    let mb = Arc::new(Mailbox::with_eventfd().unwrap());
    (UringContext::new(capacity, mb.clone(), opts).unwrap(), mb)
}

/// Sleeps in poll(2) on the mailbox's eventfd as an event loop does; true if it fired.
fn wait_readable(mb: &Mailbox, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd: mb.eventfd().unwrap(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&raw mut p, 1, ms) == 1 }
}

/// Runs the event loop until every user in `users` completed; returns them by user.
fn drive(
    c: &UringContext,
    mb: &Mailbox,
    mut done: HashMap<u64, Completion>,
    users: &[u64],
) -> HashMap<u64, Completion> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !users.iter().all(|u| done.contains_key(u)) {
        assert!(Instant::now() < deadline, "timed out: {done:?}");
        assert!(wait_readable(mb, 5000), "eventfd never fired");
        mb.clear_signal();
        for x in c.collect() {
            assert!(done.insert(x.user, x).is_none(), "settled twice: {x:?}");
        }
    }
    done
}

fn by_user(cs: Vec<Completion>) -> HashMap<u64, Completion> {
    cs.into_iter().map(|c| (c.user, c)).collect()
}

fn pipe() -> [i32; 2] {
    let mut fds = [0; 2];
    // SAFETY: room for two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    fds
}

fn close_fds(fds: &[i32]) {
    for &fd in fds {
        // SAFETY: closing descriptors the test owns, after the context is done with them.
        unsafe { libc::close(fd) };
    }
}

fn poll_req(user: u64, fd: i32) -> Request {
    Request::new(
        user,
        fd,
        0,
        Op::Poll {
            events: libc::POLLIN as u32,
        },
    )
}

fn write(user: u64, fd: i32, off: i64, buf: &[u8]) -> Request {
    // SAFETY: the tests wait for every completion (or drop the context) before `buf` goes.
    unsafe { Request::write(user, fd, off, buf.as_ptr(), buf.len()) }
}

/// A completion that arrives while the JS thread sleeps in poll(2) must signal the eventfd,
/// also under `DEFER_TASKRUN` (where it is only posted when the thread enters with
/// GETEVENTS): a poll on a pipe made readable by another thread, then `O_DIRECT` reads from
/// the device.
#[test]
fn a_late_completion_wakes_a_sleeping_loop() {
    if !available() {
        return;
    }
    let (c, mb) = looped(8, UringOptions::default());
    eprintln!("setup flags: {}", c.setup_flags());
    let fds = pipe();
    c.push(poll_req(1, fds[0]));
    assert!(c.flush().is_empty(), "the pipe is empty");
    let w = fds[1];
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: writing one byte from a static.
        unsafe { libc::write(w, b"x".as_ptr().cast(), 1) };
    });
    let t = Instant::now();
    assert!(wait_readable(&mb, 5000), "no wake-up for the poll");
    assert!(t.elapsed() >= Duration::from_millis(50), "woke too early");
    mb.clear_signal();
    let got = by_user(c.collect());
    assert_eq!(
        got[&1].res & i64::from(libc::POLLIN),
        i64::from(libc::POLLIN)
    );
    writer.join().unwrap();
    close_fds(&fds);

    // O_DIRECT reads complete from the device's interrupt, as task work.
    let f = tempfile::tempfile_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    std::io::Write::write_all(&mut &f, &vec![5u8; BLOCK * 4]).unwrap();
    f.sync_all().unwrap();
    let path = format!("/proc/self/fd/{}", f.as_raw_fd());
    let direct = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .unwrap();
    let layout = std::alloc::Layout::from_size_align(BLOCK * 4, BLOCK).unwrap();
    // SAFETY: non-zero size; freed below with the same layout.
    let buf = unsafe { std::alloc::alloc_zeroed(layout) };
    for i in 0..4 {
        // SAFETY: each read gets its own block of `buf`, which outlives the context's use.
        c.push(unsafe {
            Request::read(
                10 + i as u64,
                direct.as_raw_fd(),
                (i * BLOCK) as i64,
                buf.add(i * BLOCK),
                BLOCK,
            )
        });
    }
    let done = drive(&c, &mb, by_user(c.flush()), &[10, 11, 12, 13]);
    assert!(done.values().all(|x| x.res == BLOCK as i64), "{done:?}");
    // SAFETY: every read completed.
    assert!(unsafe { std::slice::from_raw_parts(buf, BLOCK * 4) }
        .iter()
        .all(|&b| b == 5));
    drop(c);
    // SAFETY: allocated above; nothing uses it any more.
    unsafe { std::alloc::dealloc(buf, layout) };
}

/// Many cancel CQEs pile up behind a tiny CQ (capacity 2: SQ 2, CQ 8) while nobody reaps; the
/// kernel keeps the overflow (`IORING_FEAT_NODROP`) and the engine flushes it, then 200
/// writes still pass through the 2 slots.
#[test]
fn cq_overflow_with_a_tiny_ring() {
    if !available() {
        return;
    }
    let (c, mb) = looped(2, UringOptions::default());
    let fds = pipe();
    c.push(poll_req(1, fds[0]));
    assert!(c.flush().is_empty());
    // The first cancel takes the poll; the rest answer ENOENT/EALREADY: 30 CQEs unreaped.
    for _ in 0..30 {
        assert_eq!(c.cancel(1), None);
    }
    let f = tempfile::tempfile().unwrap();
    let bufs: Vec<[u8; 8]> = (0..200u64).map(u64::to_le_bytes).collect();
    for (i, b) in bufs.iter().enumerate() {
        c.push(write(100 + i as u64, f.as_raw_fd(), i as i64 * 8, b));
    }
    let users: Vec<u64> = std::iter::once(1).chain(100..300).collect();
    let done = drive(&c, &mb, by_user(c.flush()), &users);
    assert_eq!(done[&1].res, -i64::from(libc::ECANCELED));
    assert!((100..300).all(|u| done[&u].res == 8), "{done:?}");
    assert!(c.cq_overflows() > 0, "the CQ never overflowed");
    assert_eq!(c.outstanding(), 0);
    let mut back = vec![0u8; 200 * 8];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut back, 0).unwrap();
    for (i, chunk) in back.chunks(8).enumerate() {
        assert_eq!(u64::from_le_bytes(chunk.try_into().unwrap()), i as u64);
    }
    drop(c);
    close_fds(&fds);
}

/// Close: new requests and queued polls get CLOSED, the in-flight poll is cancelled, queued
/// and in-flight writes still complete.
#[test]
fn close_cancels_polls_and_lets_transfers_finish() {
    if !available() {
        return;
    }
    let (c, mb) = looped(2, UringOptions::default());
    let fds = pipe();
    let f = tempfile::tempfile().unwrap();
    let data = [9u8; 512];
    c.push(poll_req(1, fds[0]));
    assert!(c.flush().is_empty());
    // The writes first: with poll 1 in the ring, the 8th queued request is submitted early,
    // which fills the ring's one free slot (slots free only when a flush reaps), so the
    // polls pushed after them stay queued.
    for i in 0..20 {
        c.push(write(10 + i, f.as_raw_fd(), i as i64 * 512, &data));
    }
    c.push(poll_req(2, fds[0]));
    c.push(poll_req(3, fds[0]));
    let (now, remaining) = c.close();
    let mut done = by_user(now);
    // Polls 2 and 3 were still queued (pushed after the flush).
    assert_eq!(done[&2].res, res::CLOSED, "{done:?}");
    assert_eq!(done[&3].res, res::CLOSED, "{done:?}");
    c.push(write(99, f.as_raw_fd(), 0, &data));
    for x in c.flush() {
        done.insert(x.user, x);
    }
    assert_eq!(done[&99].res, res::CLOSED);
    assert!(remaining > 0);
    let users: Vec<u64> = std::iter::once(1).chain(10..30).collect();
    let done = drive(&c, &mb, done, &users);
    assert_eq!(done[&1].res, -i64::from(libc::ECANCELED), "{done:?}");
    assert!((10..30).all(|u| done[&u].res == 512), "{done:?}");
    assert_eq!(c.outstanding(), 0);
    drop(c);
    close_fds(&fds);
}

/// Dropping with polls and `O_DIRECT` reads in flight cancels, waits, and returns.
#[test]
fn drop_with_requests_in_flight() {
    if !available() {
        return;
    }
    let fds = pipe();
    let f = tempfile::tempfile_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    std::io::Write::write_all(&mut &f, &vec![1u8; BLOCK * 8]).unwrap();
    let direct = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", f.as_raw_fd()))
        .unwrap();
    let layout = std::alloc::Layout::from_size_align(BLOCK * 8, BLOCK).unwrap();
    for callback in [false, true] {
        let mb = Arc::new(if callback {
            Mailbox::new(Box::new(|| {}))
        } else {
            Mailbox::with_eventfd().unwrap()
        });
        let c = UringContext::new(16, mb, UringOptions::default()).unwrap();
        // SAFETY: non-zero size; freed below, after the context is dropped.
        let buf = unsafe { std::alloc::alloc_zeroed(layout) };
        for i in 0..4 {
            c.push(poll_req(i, fds[0]));
        }
        for i in 0..8 {
            // SAFETY: each read has its own block; `buf` outlives the context.
            c.push(unsafe {
                Request::read(
                    100 + i as u64,
                    direct.as_raw_fd(),
                    (i * BLOCK) as i64,
                    buf.add(i * BLOCK),
                    BLOCK,
                )
            });
        }
        let _ = c.flush();
        let t = Instant::now();
        drop(c);
        assert!(t.elapsed() < Duration::from_secs(5), "drop hung");
        // SAFETY: the context waited for every CQE before it was freed.
        unsafe { std::alloc::dealloc(buf, layout) };
    }
    close_fds(&fds);
}

/// Forced fallback: readv and poll run on the context's pool; a CQE answering EOPNOTSUPP
/// (an unknown RWF bit) is re-run there too, and the pool's own answer is reported.
#[test]
fn forced_fallback_runs_on_the_pool() {
    if !available() {
        return;
    }
    let opts = UringOptions {
        force_fallback: vec!["readv".into(), "poll".into()],
        ..UringOptions::default()
    };
    let (c, mb) = looped(4, opts);
    let f = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut &f, b"abcdefgh").unwrap();
    let mut a = [0u8; 3];
    let mut b = [0u8; 5];
    let iov: Box<[libc::iovec]> = Box::new([
        libc::iovec {
            iov_base: a.as_mut_ptr().cast(),
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        },
    ]);
    // SAFETY: `a` and `b` outlive the request (the loop below waits for it).
    c.push(unsafe { Request::vectored(1, f.as_raw_fd(), 0, iov, false) });
    let fds = pipe();
    // SAFETY: one byte from a static.
    unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) };
    c.push(poll_req(2, fds[0]));
    let mut buf = [0u8; 8];
    // SAFETY: `buf` outlives the request.
    let mut odd = unsafe { Request::read(3, f.as_raw_fd(), 0, buf.as_mut_ptr(), 8) };
    odd.rw_flags = 0x1000_0000; // no such RWF_ bit: the ring answers EOPNOTSUPP
    c.push(odd);
    let done = drive(&c, &mb, by_user(c.flush()), &[1, 2, 3]);
    assert_eq!(done[&1].res, 8);
    assert_eq!((&a, &b), (b"abc", b"defgh"));
    assert_eq!(
        done[&2].res & i64::from(libc::POLLIN),
        i64::from(libc::POLLIN)
    );
    assert_eq!(
        done[&3].res,
        -i64::from(libc::EOPNOTSUPP),
        "the pool's answer"
    );
    assert_eq!(c.fallbacks(), 3, "readv, poll, and the EOPNOTSUPP retry");
    assert_eq!(c.outstanding(), 0);
    drop(c);
    close_fds(&fds);
}

/// Callback mailbox (hosts without libuv): the completion thread reaps a late completion and
/// calls back, with no eventfd watched by the caller; queued requests are refilled by it.
#[test]
fn callback_mailbox_delivers_late_completions() {
    if !available() {
        return;
    }
    let signal = Arc::new((Mutex::new(0u32), Condvar::new()));
    let sig = signal.clone();
    let mb = Arc::new(Mailbox::new(Box::new(move || {
        *sig.0.lock().unwrap() += 1;
        sig.1.notify_all();
    })));
    let c = UringContext::new(1, mb.clone(), UringOptions::default()).unwrap();
    assert_eq!(c.setup_flags(), "SUBMIT_ALL");
    let fds = pipe();
    c.push(poll_req(1, fds[0]));
    let f = tempfile::tempfile().unwrap();
    let data = [3u8; 64];
    c.push(write(2, f.as_raw_fd(), 0, &data));
    assert!(c.flush().is_empty(), "the poll holds the only slot");
    // SAFETY: one byte from a static.
    unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) };
    let mut done = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while done.len() < 2 {
        assert!(Instant::now() < deadline, "timed out: {done:?}");
        let (m, cv) = &*signal;
        let g = m.lock().unwrap();
        drop(cv.wait_timeout(g, Duration::from_millis(50)).unwrap());
        for x in c.collect() {
            done.insert(x.user, x);
        }
    }
    assert_eq!(
        done[&1].res & i64::from(libc::POLLIN),
        i64::from(libc::POLLIN)
    );
    assert_eq!(
        done[&2].res, 64,
        "the completion thread submitted the queued write"
    );
    drop(c);
    close_fds(&fds);
}

/// Runs `name` from this test binary in a child process with `KAIO_CHILD=1`.
fn in_child(name: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("KAIO_CHILD", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

/// As root: a ring created before `setuid(65534)` keeps working after it, for a plain ring and
/// an SQPOLL one (which registers a personality for the new credentials at the next flush).
/// Permissions are checked at open: the root-only file opened before the drop is still
/// written, and opening it again fails.
#[test]
fn rings_keep_working_after_setuid() {
    // SAFETY: plain getter.
    if !available() || unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root and io_uring");
        return;
    }
    in_child("setuid_child");
}

#[test]
fn setuid_child() {
    if std::env::var_os("KAIO_CHILD").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root-only");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    let (plain, mb1) = looped(4, UringOptions::default());
    let (polled, mb2) = looped(
        4,
        UringOptions {
            sqpoll_idle_ms: Some(10),
            ..UringOptions::default()
        },
    );
    assert!(
        polled.setup_flags().starts_with("SQPOLL"),
        "{}",
        polled.setup_flags()
    );
    // SAFETY: dropping to nobody/nogroup; glibc applies it to every thread.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
        assert_eq!(libc::setgid(65534), 0);
        assert_eq!(libc::setuid(65534), 0);
    }
    let again = std::fs::OpenOptions::new().write(true).open(&path);
    assert_eq!(
        again.unwrap_err().raw_os_error(),
        Some(libc::EACCES),
        "credentials dropped"
    );
    let data = [1u8; 16];
    for (i, (c, mb)) in [(&plain, &mb1), (&polled, &mb2)].into_iter().enumerate() {
        c.push(write(1, f.as_raw_fd(), i as i64 * 16, &data));
        let done = drive(c, mb, by_user(c.flush()), &[1]);
        assert_eq!(done[&1].res, 16, "{}: {done:?}", c.setup_flags());
    }
    drop(plain);
    drop(polled);
}

/// Errors equal kernel AIO's: a directory read is EISDIR, a misaligned `O_DIRECT` read is
/// EINVAL in the completion, `res2` is 0.
#[test]
fn errors_match_kernel_aio() {
    if !available() || !kaio_core::aio::probe().available {
        return;
    }
    let dir = std::fs::File::open(env!("CARGO_MANIFEST_DIR")).unwrap();
    let f = tempfile::tempfile_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    std::io::Write::write_all(&mut &f, &[1u8; 8192]).unwrap();
    let direct = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", f.as_raw_fd()))
        .unwrap();
    let mut results = Vec::new();
    for uring in [false, true] {
        let mb = Arc::new(Mailbox::with_eventfd().unwrap());
        let b = if uring {
            kaio_core::Backend::uring(4, mb.clone(), UringOptions::default()).unwrap()
        } else {
            kaio_core::Backend::linux(4, mb.clone()).unwrap()
        };
        let mut buf = vec![0u8; 8192];
        // SAFETY: `buf` outlives both requests (we wait for them below).
        unsafe {
            b.push(Request::read(1, dir.as_raw_fd(), 0, buf.as_mut_ptr(), 16));
            b.push(Request::read(
                2,
                direct.as_raw_fd(),
                0,
                buf.as_mut_ptr().add(1),
                4096,
            ));
        }
        let mut done = by_user(b.flush());
        let deadline = Instant::now() + Duration::from_secs(10);
        while done.len() < 2 {
            assert!(Instant::now() < deadline, "timed out: {done:?}");
            if wait_readable(&mb, 100) {
                mb.clear_signal();
            }
            done.extend(by_user(b.collect()));
        }
        let mut v: Vec<Completion> = done.into_values().collect();
        v.sort_by_key(|c| c.user);
        results.push(v);
        drop(b);
    }
    assert_eq!(results[0], results[1], "aio vs uring");
    assert_eq!(results[1][0].res, -i64::from(libc::EISDIR));
    assert_eq!(results[1][1].res, -i64::from(libc::EINVAL));
    assert!(results[1].iter().all(|c| c.res2 == 0));
}

/// A statx through the ring fills the same fields as a plain `statx(2)`, and on a kernel
/// with the path opcodes nothing goes to the fallback pool; a cancel of an in-flight statx is
/// allowed (it changes nothing) and settles it exactly once.
#[test]
fn statx_through_the_ring_matches_the_syscall() {
    if !available() {
        return;
    }
    let (c, mb) = looped(4, UringOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, vec![7u8; 12345]).unwrap();
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: `struct statx` is plain integers: all zeros is valid.
    let mut ring: Box<kaio_core::sys::Statx> = Box::new(unsafe { std::mem::zeroed() });
    // SAFETY: as above.
    let mut plain: Box<kaio_core::sys::Statx> = Box::new(unsafe { std::mem::zeroed() });
    let mask = libc::STATX_BASIC_STATS | libc::STATX_BTIME;
    // SAFETY: `ring` outlives the request (`drive` waits for it).
    c.push(unsafe { Request::statx(1, -1, cpath.clone(), 0, mask, &raw mut *ring) });
    let done = drive(&c, &mb, by_user(c.flush()), &[1]);
    assert_eq!(done[&1].res, 0);
    // SAFETY: `plain` is a writable statx buffer for the call.
    unsafe { kaio_core::sys::statx(libc::AT_FDCWD, &cpath, 0, mask, &raw mut *plain) }.unwrap();
    let fields = |s: &kaio_core::sys::Statx| {
        [
            u64::from(s.stx_mask & mask),
            u64::from(s.stx_blksize),
            u64::from(s.stx_nlink),
            u64::from(s.stx_uid),
            u64::from(s.stx_gid),
            u64::from(s.stx_mode),
            s.stx_ino,
            s.stx_size,
            s.stx_blocks,
            s.stx_mtime.tv_sec as u64,
            u64::from(s.stx_mtime.tv_nsec),
            s.stx_ctime.tv_sec as u64,
            u64::from(s.stx_ctime.tv_nsec),
            s.stx_btime.tv_sec as u64,
            u64::from(s.stx_btime.tv_nsec),
            u64::from(s.stx_dev_major),
            u64::from(s.stx_dev_minor),
            u64::from(s.stx_rdev_major),
            u64::from(s.stx_rdev_minor),
        ]
    };
    assert_eq!(fields(&ring), fields(&plain));
    assert_eq!(ring.stx_size, 12345);
    // Every path op of this spec exists on Linux 6.9+: none fell back but close, which the
    // engine always gives its pool.
    let v = kaio_core::probe::parse_release(&kaio_core::sys::kernel_release().unwrap()).unwrap();
    if v >= (6, 9) {
        let fd = std::fs::File::open(&path).unwrap();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(fd);
        // One at a time: requests in the ring together are not ordered.
        c.push(Request::new(2, fd, 0, Op::Ftruncate { len: 0 }));
        let mut done = drive(&c, &mb, by_user(c.flush()), &[2]);
        c.push(Request::new(3, fd, 0, Op::Close));
        done.extend(drive(&c, &mb, by_user(c.flush()), &[3]));
        // Read-only descriptor: ftruncate says EINVAL (the pool's answer too), close works.
        assert_eq!(done[&2].res, -i64::from(libc::EINVAL));
        assert_eq!(done[&3].res, 0);
        assert_eq!(
            c.fallbacks(),
            2,
            "the EINVAL answer re-run on the pool, and the close (always the pool's)"
        );
    }
    // SAFETY: as above.
    c.push(unsafe { Request::statx(4, -1, cpath, 0, mask, &raw mut *ring) });
    let mut done = by_user(c.flush());
    if !done.contains_key(&4) {
        assert_eq!(c.cancel(4), None, "in flight: the CQE reports it");
        done = drive(&c, &mb, done, &[4]);
    }
    assert!(done[&4].res == 0 || done[&4].res == -i64::from(libc::ECANCELED));
    assert_eq!(c.outstanding(), 0);
}

/// An OPENAT of a FIFO waits for its other end, as open(2) does (not the kernel's inline
/// `O_NONBLOCK` attempt), and completes once a writer comes.
#[test]
fn openat_of_a_fifo_waits_for_a_writer() {
    if !available() {
        return;
    }
    let (c, mb) = looped(4, UringOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let cpath = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(cpath.as_ptr(), 0o600) }, 0);
    let _ = std::fs::metadata(&fifo); // its lookup is cached: the inline attempt would succeed
    c.push(Request::new(
        1,
        -1,
        0,
        Op::Openat {
            path: cpath,
            flags: libc::O_RDONLY,
            mode: 0,
        },
    ));
    let mut done = by_user(c.flush());
    assert!(!done.contains_key(&1), "opened without a writer: {done:?}");
    assert!(!wait_readable(&mb, 100), "opened without a writer");
    let writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    done = drive(&c, &mb, done, &[1]);
    let fd = done[&1].res;
    assert!(fd >= 0, "{fd}");
    drop(writer);
    close_fds(&[fd as i32]);
    assert_eq!(c.outstanding(), 0);
}

/// FALLOCATE and FADVISE (both Linux 5.6) go through the ring, not the pool, but for an
/// fadvise length past the SQE's 32 bits, which only the pool carries whole.
#[test]
fn fallocate_and_fadvise_use_their_opcodes() {
    if !available() {
        return;
    }
    let (c, mb) = looped(4, UringOptions::default());
    let f = tempfile::tempfile().unwrap();
    let fd = f.as_raw_fd();
    let ops = [
        Op::Fallocate {
            mode: 0,
            offset: 0,
            len: 65536,
        },
        Op::Fadvise {
            offset: 0,
            len: 0,
            advice: libc::POSIX_FADV_SEQUENTIAL,
        },
        Op::Fadvise {
            offset: 0,
            len: 1 << 32,
            advice: libc::POSIX_FADV_DONTNEED,
        },
    ];
    // One at a time: requests in the ring together are not ordered.
    for (user, op) in (1..).zip(ops) {
        c.push(Request::new(user, fd, 0, op));
        let done = drive(&c, &mb, by_user(c.flush()), &[user]);
        assert_eq!(done[&user].res, 0, "request {user}");
    }
    assert_eq!(f.metadata().unwrap().len(), 65536);
    assert_eq!(c.fallbacks(), 1, "only the long fadvise ran on the pool");
    assert_eq!(c.outstanding(), 0);
}

/// While what the last flush submitted still waits in the ring (here an open of a FIFO,
/// standing for reads on the device), the `EARLY_SUBMIT_AT`-th request queued
/// behind it is submitted by `push` itself: polls on a ready pipe then complete, and signal
/// the eventfd, before any flush. Not on a fresh ring, and no longer once a flush's requests
/// all completed inside it (page-cache hits; polls never count, a standing one included).
#[test]
fn push_submits_early_while_requests_wait_in_the_ring() {
    if !available() {
        return;
    }
    if std::env::var_os("KAIO_EARLY_SUBMIT").is_some_and(|v| v == "0")
        || std::env::var_os(uring::FORCE_FALLBACK_ENV).is_some()
    {
        eprintln!("skipped: early submission off, or ops forced onto the fallback pool");
        return;
    }
    let n = uring::EARLY_SUBMIT_AT as u64;
    let (c, mb) = looped(64, UringOptions::default());
    let (empty, ready) = (pipe(), pipe());
    // SAFETY: one byte from a live buffer into our own pipe.
    assert_eq!(unsafe { libc::write(ready[1], b"x".as_ptr().cast(), 1) }, 1);
    let polls = |from: u64| (from..from + n).collect::<Vec<u64>>();
    // Pushes `n` polls on the ready pipe from user `from`; whether the eventfd fired before
    // the last push, and right after it.
    let push_polls = |from: u64| {
        mb.clear_signal();
        for user in from..from + n - 1 {
            c.push(poll_req(user, ready[0]));
        }
        let before = wait_readable(&mb, 100);
        c.push(poll_req(from + n - 1, ready[0]));
        (before, wait_readable(&mb, 100))
    };

    // A fresh ring: the polls wait for the flush.
    assert_eq!(push_polls(10), (false, false), "submitted before the flush");
    let mut done = by_user(c.flush());
    done = drive(&c, &mb, done, &polls(10));

    // An open that waits in the ring (a FIFO's read end, in an io-wq worker until a writer
    // comes) and a standing poll, which does not count; then the polls.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let cfifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(cfifo.as_ptr(), 0o600) }, 0);
    c.push(poll_req(1, empty[0]));
    let open = Op::Openat {
        path: cfifo,
        flags: libc::O_RDONLY,
        mode: 0,
    };
    c.push(Request::new(2, -1, 0, open));
    done.extend(by_user(c.flush()));
    assert!(!done.contains_key(&2), "opened without a writer: {done:?}");
    assert_eq!(
        push_polls(20),
        (false, true),
        "not submitted at the {n}th push"
    );
    done = drive(&c, &mb, done, &polls(20));
    for u in polls(20) {
        assert_eq!(done[&u].res, i64::from(libc::POLLIN), "{:?}", done[&u]);
    }
    let writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    done = drive(&c, &mb, done, &[2]);
    assert!(done[&2].res >= 0, "{:?}", done[&2]);
    drop(writer);
    close_fds(&[done[&2].res as i32]);

    // A flush whose requests all complete inside it (the standing poll still waits): back
    // to waiting for the flush.
    c.push(poll_req(3, ready[0]));
    done.extend(by_user(c.flush()));
    done = drive(&c, &mb, done, &[3]);
    assert_eq!(
        push_polls(30),
        (false, false),
        "submitted early after a flush of hits"
    );
    done.extend(by_user(c.flush()));
    done = drive(&c, &mb, done, &polls(30));

    // The standing poll completes as usual.
    // SAFETY: as above.
    assert_eq!(unsafe { libc::write(empty[1], b"x".as_ptr().cast(), 1) }, 1);
    let done = drive(&c, &mb, done, &[1]);
    assert_eq!(done[&1].res, i64::from(libc::POLLIN));
    drop(c);
    close_fds(&[empty[0], empty[1], ready[0], ready[1]]);
}
