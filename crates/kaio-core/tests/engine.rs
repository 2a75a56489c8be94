//! Integration tests on real temp files, run once per backend.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use kaio_core::{res, Backend, Completion, Mailbox, Op, Request};

/// A backend plus a way to wait for its completions.
struct Harness {
    backend: Backend,
    mailbox: Arc<Mailbox>,
    signal: Arc<(Mutex<bool>, Condvar)>,
    /// Loop-driven linux: the mailbox's eventfd, watched as an event loop would.
    loop_fd: Option<i32>,
    done: HashMap<u64, Completion>,
}

type Maker = (&'static str, fn(u32) -> Harness);

fn backends() -> Vec<Maker> {
    let mut v: Vec<Maker> = vec![("thread", |n| harness(n, false))];
    if kaio_core::probe::probe().available {
        v.insert(0, ("linux", |n| harness(n, true)));
        #[cfg(target_os = "linux")]
        v.insert(1, ("linux (loop-driven)", loop_harness));
    } else {
        eprintln!(
            "linux backend skipped: {}",
            kaio_core::probe::probe().reason
        );
    }
    #[cfg(target_os = "linux")]
    if kaio_core::uring::probe().available {
        v.push(("uring (loop-driven)", uring_loop_harness));
        v.push(("uring (callback)", uring_callback_harness));
    } else {
        eprintln!(
            "uring backend skipped: {}",
            kaio_core::uring::probe().reason
        );
    }
    v
}

/// Whether `name` is an `io_uring` engine (whose close lets queued transfers finish and whose
/// cancelled polls answer -ECANCELED).
fn is_uring(name: &str) -> bool {
    name.starts_with("uring")
}

#[cfg(target_os = "linux")]
fn uring_loop_harness(capacity: u32) -> Harness {
    let mailbox = Arc::new(Mailbox::with_eventfd().unwrap());
    Harness {
        backend: Backend::uring(
            capacity,
            mailbox.clone(),
            kaio_core::uring::UringOptions::default(),
        )
        .unwrap(),
        loop_fd: mailbox.eventfd(),
        mailbox,
        signal: Arc::new((Mutex::new(false), Condvar::new())),
        done: HashMap::new(),
    }
}

#[cfg(target_os = "linux")]
fn uring_callback_harness(capacity: u32) -> Harness {
    let mut h = harness(capacity, false);
    h.backend = Backend::uring(
        capacity,
        h.mailbox.clone(),
        kaio_core::uring::UringOptions::default(),
    )
    .unwrap();
    h
}

fn harness(capacity: u32, linux: bool) -> Harness {
    let signal = Arc::new((Mutex::new(false), Condvar::new()));
    let s = signal.clone();
    let mailbox = Arc::new(Mailbox::new(Box::new(move || {
        *s.0.lock().unwrap() = true;
        s.1.notify_all();
    })));
    let backend = if linux {
        #[cfg(target_os = "linux")]
        {
            Backend::linux(capacity, mailbox.clone()).unwrap()
        }
        #[cfg(not(target_os = "linux"))]
        unreachable!()
    } else {
        Backend::thread(capacity.min(8), mailbox.clone()).unwrap()
    };
    Harness {
        backend,
        mailbox,
        signal,
        loop_fd: None,
        done: HashMap::new(),
    }
}

#[cfg(target_os = "linux")]
fn loop_harness(capacity: u32) -> Harness {
    let mailbox = Arc::new(Mailbox::with_eventfd().unwrap());
    Harness {
        backend: Backend::linux(capacity, mailbox.clone()).unwrap(),
        loop_fd: mailbox.eventfd(),
        mailbox,
        signal: Arc::new((Mutex::new(false), Condvar::new())),
        done: HashMap::new(),
    }
}

impl Harness {
    fn run(&mut self, reqs: Vec<Request>) -> Vec<Completion> {
        let users: Vec<u64> = reqs.iter().map(|r| r.user).collect();
        for r in reqs {
            self.backend.push(r);
        }
        self.collect(self.backend.flush());
        self.wait_for(&users)
    }

    fn collect(&mut self, cs: Vec<Completion>) {
        for c in cs {
            assert!(
                self.done.insert(c.user, c).is_none(),
                "settled twice: {c:?}"
            );
        }
    }

    fn wait_for(&mut self, users: &[u64]) -> Vec<Completion> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !users.iter().all(|u| self.done.contains_key(u)) {
            assert!(std::time::Instant::now() < deadline, "timed out");
            if let Some(fd) = self.loop_fd {
                // An event loop, as the binding's: wait until the eventfd is readable, reset
                // it, then collect (reap the ring, take the mailbox). A lost wake-up would
                // time out here.
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                let ready = unsafe { libc::poll(&raw mut p, 1, 5000) };
                assert_eq!(ready, 1, "eventfd never became readable");
                self.mailbox.clear_signal();
                let got = self.backend.collect();
                self.collect(got);
                continue;
            }
            let got = self.mailbox.take();
            if got.is_empty() {
                let (m, cv) = &*self.signal;
                let g = m.lock().unwrap();
                let mut g = cv.wait_timeout(g, Duration::from_millis(20)).unwrap().0;
                *g = false;
            }
            self.collect(got);
        }
        users.iter().map(|u| self.done.remove(u).unwrap()).collect()
    }
}

fn temp_file() -> std::fs::File {
    tempfile::tempfile().unwrap()
}

fn read(user: u64, fd: i32, off: i64, buf: &mut [u8]) -> Request {
    // SAFETY: the tests wait for every completion before the buffer goes away.
    unsafe { Request::read(user, fd, off, buf.as_mut_ptr(), buf.len()) }
}

fn write(user: u64, fd: i32, off: i64, buf: &[u8]) -> Request {
    // SAFETY: as above.
    unsafe { Request::write(user, fd, off, buf.as_ptr(), buf.len()) }
}

#[test]
fn write_then_read_round_trip() {
    for (name, make) in backends() {
        let mut h = make(8);
        let f = temp_file();
        let fd = f.as_raw_fd();
        let data = b"hello kernel aio".to_vec();
        let c = h.run(vec![write(1, fd, 0, &data)]);
        assert_eq!(c[0].res, data.len() as i64, "{name}");
        let mut buf = vec![0u8; 64];
        let c = h.run(vec![read(2, fd, 0, &mut buf)]);
        assert_eq!(c[0].res, data.len() as i64, "{name}: short read at EOF");
        assert_eq!(&buf[..data.len()], &data[..]);
        let c = h.run(vec![read(3, fd, 1000, &mut buf)]);
        assert_eq!(c[0].res, 0, "{name}: past EOF reads nothing");
        let c = h.run(vec![
            Request::new(4, fd, 0, Op::Fsync),
            Request::new(5, fd, 0, Op::Fdsync),
        ]);
        assert_eq!((c[0].res, c[1].res), (0, 0), "{name}");
    }
}

#[test]
fn many_requests_through_a_small_ring() {
    many_requests(2);
}

/// Past `OFFLOAD_AT` in flight the completion thread takes over submission.
#[test]
fn many_requests_with_submission_handed_over() {
    many_requests(64);
}

/// Writes the numbers `0..n` as 8-byte little-endian words at offsets `0, 8, 16, ...`, one
/// request each, and waits for them.
fn write_numbers(h: &mut Harness, fd: i32, n: u64) -> Vec<Completion> {
    let bufs: Vec<[u8; 8]> = (0..n).map(u64::to_le_bytes).collect();
    let reqs = bufs
        .iter()
        .enumerate()
        .map(|(i, b)| write(i as u64, fd, i as i64 * 8, b))
        .collect();
    h.run(reqs)
}

fn many_requests(capacity: u32) {
    for (name, make) in backends() {
        let mut h = make(capacity);
        let f = temp_file();
        let fd = f.as_raw_fd();
        let cs = write_numbers(&mut h, fd, 1500);
        assert!(cs.iter().all(|c| c.res == 8), "{name}");
        let mut back = vec![0u8; 1500 * 8];
        let c = h.run(vec![read(9999, fd, 0, &mut back)]);
        assert_eq!(c[0].res, back.len() as i64);
        for (i, chunk) in back.chunks(8).enumerate() {
            assert_eq!(
                u64::from_le_bytes(chunk.try_into().unwrap()),
                i as u64,
                "{name}"
            );
        }
    }
}

#[test]
fn errors_are_negative_errno() {
    for (name, make) in backends() {
        let mut h = make(4);
        let mut buf = [0u8; 4];
        let c = h.run(vec![read(1, 9999, 0, &mut buf)]);
        assert_eq!(c[0].res, -i64::from(libc::EBADF), "{name}");
        let mut fds = [0; 2];
        // SAFETY: room for two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let c = h.run(vec![read(2, fds[0], 0, &mut buf)]);
        assert_eq!(
            c[0].res,
            -i64::from(libc::ESPIPE),
            "{name}: pipes never block"
        );
        // SAFETY: closing our own descriptors.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        let f = temp_file();
        let c = h.run(vec![read(3, f.as_raw_fd(), -1, &mut buf)]);
        assert_eq!(
            c[0].res,
            -i64::from(libc::EINVAL),
            "{name}: negative offset"
        );
    }
}

/// A descriptor number reused for a pipe after its requests left the queue (submitted, or
/// withdrawn) is checked again: the pipe gets ESPIPE instead of blocking inside `io_submit`.
#[test]
fn a_reused_descriptor_is_checked_again() {
    for (name, make) in backends() {
        let mut h = make(4);
        let f = temp_file();
        let mut fds = [0; 2];
        // SAFETY: room for two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: a fresh descriptor number that refers to the file for now.
        let fd = unsafe { libc::dup(f.as_raw_fd()) };
        let mut buf = [0u8; 8];
        let reuse = |target: i32| {
            // SAFETY: `fd` is ours; dup2 makes it refer to `target`.
            assert_eq!(unsafe { libc::dup2(target, fd) }, fd);
        };
        // Submitted, then the number refers to a pipe.
        let c = h.run(vec![read(1, fd, 0, &mut buf), read(2, fd, 0, &mut buf)]);
        assert_eq!((c[0].res, c[1].res), (0, 0), "{name}");
        reuse(fds[0]);
        let c = h.run(vec![read(3, fd, 0, &mut buf)]);
        assert_eq!(c[0].res, -i64::from(libc::ESPIPE), "{name}: after submit");
        // Withdrawn before submission, then the number refers to a pipe.
        reuse(f.as_raw_fd());
        h.backend.push(read(4, fd, 0, &mut buf));
        assert_eq!(
            h.backend.cancel(4),
            Some(Completion::new(4, res::CANCELLED)),
            "{name}"
        );
        reuse(fds[0]);
        let c = h.run(vec![read(5, fd, 0, &mut buf)]);
        assert_eq!(c[0].res, -i64::from(libc::ESPIPE), "{name}: after cancel");
        drop(h);
        // SAFETY: closing our own descriptors after the backend is gone.
        unsafe {
            libc::close(fd);
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}

#[test]
fn close_fails_queued_requests_and_drop_waits() {
    for (name, make) in backends() {
        let mut h = make(1);
        let f = temp_file();
        let data = vec![7u8; 4096];
        for i in 0..100 {
            h.backend
                .push(write(i, f.as_raw_fd(), i as i64 * 4096, &data));
        }
        let (closed, running) = h.backend.close();
        if is_uring(name) {
            // io_uring's close lets queued transfers run: they are still submitted.
            assert!(closed.iter().all(|c| c.res == 4096), "{name}: {closed:?}");
            assert_eq!(running + closed.len(), 100, "{name}");
            h.collect(closed);
            h.collect(h.backend.flush());
            h.backend.push(write(500, f.as_raw_fd(), 0, &data));
            let mut after = h.backend.flush();
            let refused = after.iter().position(|c| c.user == 500).expect("refused");
            assert_eq!(after.remove(refused).res, res::CLOSED, "{name}");
            h.collect(after);
            let users: Vec<u64> = (0..100).collect();
            let done = h.wait_for(&users);
            assert!(done.iter().all(|c| c.res == 4096), "{name}");
            drop(h);
            continue;
        }
        assert!(running <= 8, "{name}");
        assert!(closed.iter().all(|c| c.res == res::CLOSED), "{name}");
        let late = h.backend.flush();
        assert!(late.is_empty() || late.iter().all(|c| c.res == res::CLOSED));
        h.backend.push(write(500, f.as_raw_fd(), 0, &data));
        let after = h.backend.flush();
        assert_eq!(after, vec![Completion::new(500, res::CLOSED)], "{name}");
        drop(h);
    }
}

#[test]
fn cancel_withdraws_queued_requests_and_polls() {
    for (name, make) in backends() {
        let mut h = make(1);
        let f = temp_file();
        let mut fds = [0; 2];
        // SAFETY: room for two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // A poll on an empty pipe keeps the only slot (or worker) busy.
        h.backend.push(Request::new(
            1,
            fds[0],
            0,
            Op::Poll {
                events: libc::POLLIN as u32,
            },
        ));
        assert!(h.backend.flush().is_empty(), "{name}");
        std::thread::sleep(Duration::from_millis(20));
        let data = [1u8; 8];
        h.backend.push(write(2, f.as_raw_fd(), 0, &data));
        assert!(
            h.backend.flush().is_empty(),
            "{name}: the write waits for a slot"
        );
        assert_eq!(
            h.backend.cancel(2),
            Some(Completion::new(2, res::CANCELLED)),
            "{name}"
        );
        assert_eq!(h.backend.cancel(1), None, "{name}: the poll is in flight");
        let c = h.wait_for(&[1]);
        // Kernel AIO and the pool report no events; io_uring's cancel answers ECANCELED.
        let want = if is_uring(name) {
            -i64::from(libc::ECANCELED)
        } else {
            0
        };
        assert_eq!(
            c[0].res, want,
            "{name}: a cancelled poll completes with no events: {c:?}"
        );
        drop(h);
        // SAFETY: closing our own descriptors after the backend is gone.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}

#[test]
fn poll_reports_the_ready_mask() {
    for (name, make) in backends() {
        let mut h = make(2);
        let mut fds = [0; 2];
        // SAFETY: room for two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: writing one byte from a local.
        assert_eq!(unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) }, 1);
        let c = h.run(vec![Request::new(
            1,
            fds[0],
            0,
            Op::Poll {
                events: libc::POLLIN as u32,
            },
        )]);
        assert_eq!(
            c[0].res & i64::from(libc::POLLIN),
            i64::from(libc::POLLIN),
            "{name}"
        );
        // SAFETY: closing our own descriptors.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}

#[test]
fn a_buffered_request_that_turns_direct_still_completes() {
    // Buffered requests are submitted without an eventfd signal (they finish inside
    // io_submit). Setting O_DIRECT after the check makes them finish later, on the device:
    // the engine must still notice and deliver them (a missed wake-up times out here).
    const BLOCK: usize = 4096;
    const N: usize = 16;
    let layout = std::alloc::Layout::from_size_align(BLOCK * N, BLOCK).unwrap();
    for (name, make) in backends() {
        let mut h = make(N as u32);
        // On the real disk (the crate's directory), where O_DIRECT reads go to the device.
        let f = tempfile::tempfile_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let data: Vec<u8> = (0..BLOCK * N).map(|i| (i * 7 % 251) as u8).collect();
        std::io::Write::write_all(&mut &f, &data).unwrap();
        f.sync_all().unwrap();
        let fd = f.as_raw_fd();
        // SAFETY: a non-zero size; freed below with the same layout.
        let buf = unsafe { std::alloc::alloc_zeroed(layout) };
        for i in 0..N {
            // SAFETY: each request gets its own block of `buf`, which outlives them.
            let r = unsafe {
                Request::read(i as u64, fd, (i * BLOCK) as i64, buf.add(i * BLOCK), BLOCK)
            };
            h.backend.push(r);
        }
        // SAFETY: F_SETFL on our own descriptor.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_DIRECT) },
            0
        );
        let first = h.backend.flush();
        h.collect(first);
        let users: Vec<u64> = (0..N as u64).collect();
        let done = h.wait_for(&users);
        assert!(
            done.iter().all(|c| c.res == BLOCK as i64),
            "{name}: {done:?}"
        );
        // SAFETY: every read completed; `buf` holds BLOCK * N initialised bytes.
        assert_eq!(
            unsafe { std::slice::from_raw_parts(buf, BLOCK * N) },
            &data[..],
            "{name}"
        );
        drop(h);
        // SAFETY: allocated above with this layout; no request uses it any more.
        unsafe { std::alloc::dealloc(buf, layout) };
    }
}

/// More requests than the inline rounds submit through a small ring, fewer than hand over to
/// the completion thread: the rest must still be submitted although buffered completions do
/// not signal the eventfd (this hung before the engine signalled for the queue's rest).
#[test]
fn a_queue_longer_than_the_inline_rounds_drains() {
    for (name, make) in backends() {
        let mut h = make(4);
        let f = temp_file();
        let cs = write_numbers(&mut h, f.as_raw_fd(), 50);
        assert!(cs.iter().all(|c| c.res == 8), "{name}: {cs:?}");
    }
}
