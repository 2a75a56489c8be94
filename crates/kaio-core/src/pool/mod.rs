//! The thread backend: a pool of worker threads doing `pread`/`pwrite`/`preadv2`/`pwritev2`/
//! `fsync`/`fdatasync`/`poll`, with its own threads (not libuv's), completions handed to the
//! same [`Mailbox`] as the kernel backend.
//!
//! Memory invariant: a request's buffers are used only by the worker running it; dropping the
//! pool joins every worker, so no caller memory is touched after `drop` returns.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

mod probe;
pub use probe::probe;

use crate::mailbox::Mailbox;
use crate::request::{res, Completion, Op, Request};
use crate::sys;

/// Workers a pool starts when none is asked for.
pub const DEFAULT_POOL_SIZE: u32 = 8;
/// Most workers one pool may have.
pub const MAX_POOL_SIZE: u32 = 1024;
/// How often a blocked `poll` looks for cancellation or shutdown, in milliseconds.
const POLL_SLICE_MS: i32 = 50;

struct Running {
    user: u64,
    cancel: Arc<AtomicBool>,
}

struct State {
    /// Pushed since the last flush; handed to the workers together by `flush`, so requests
    /// made in one tick start together and can still be withdrawn until then.
    staged: Vec<Request>,
    jobs: VecDeque<Request>,
    running: Vec<Running>,
    ready: Vec<Completion>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    stop: AtomicBool,
    mailbox: Arc<Mailbox>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A worker pool.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `size` workers (1..=[`MAX_POOL_SIZE`]).
    pub fn new(size: u32, mailbox: Arc<Mailbox>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                staged: Vec::new(),
                jobs: VecDeque::new(),
                running: Vec::new(),
                ready: Vec::new(),
                closed: false,
            }),
            cv: Condvar::new(),
            stop: AtomicBool::new(false),
            mailbox,
        });
        let mut pool = Self {
            shared,
            workers: Vec::new(),
        };
        for i in 0..size.clamp(1, MAX_POOL_SIZE) {
            let s = pool.shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("kaio-worker-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || worker_loop(&s))?;
            pool.workers.push(h);
        }
        Ok(pool)
    }

    /// Number of workers.
    #[must_use]
    pub fn size(&self) -> usize {
        self.workers.len()
    }

    /// Stages a request; the next [`flush`](Self::flush) hands it to the workers. Flags a
    /// platform cannot honour fail with ENOTSUP rather than being dropped silently.
    pub fn push(&self, req: Request) {
        let mut st = lock(&self.shared.state);
        if st.closed {
            st.ready.push(Completion::new(req.user, res::CLOSED));
            return;
        }
        st.staged.push(req);
    }

    /// Takes the completions waiting in the mailbox (the consumer has reset its eventfd).
    pub fn collect(&self) -> Vec<Completion> {
        self.shared.mailbox.take()
    }

    /// Hands staged requests to the workers; returns completions decided without a worker
    /// (requests pushed after close).
    pub fn flush(&self) -> Vec<Completion> {
        let mut st = lock(&self.shared.state);
        let n = st.staged.len();
        if n > 0 {
            let staged = std::mem::take(&mut st.staged);
            st.jobs.extend(staged);
        }
        let ready = std::mem::take(&mut st.ready);
        drop(st);
        if n == 1 {
            self.shared.cv.notify_one();
        } else if n > 1 {
            self.shared.cv.notify_all();
        }
        ready
    }

    /// Withdraws request `user`: a queued one is removed (returned as cancelled); a running
    /// `poll` is told to stop (it completes with 0, no events); other running requests
    /// run to completion.
    pub fn cancel(&self, user: u64) -> Option<Completion> {
        let mut st = lock(&self.shared.state);
        if let Some(i) = st.staged.iter().position(|r| r.user == user) {
            st.staged.remove(i);
            return Some(Completion::new(user, res::CANCELLED));
        }
        if let Some(i) = st.jobs.iter().position(|r| r.user == user) {
            st.jobs.remove(i);
            return Some(Completion::new(user, res::CANCELLED));
        }
        if let Some(r) = st.running.iter().find(|r| r.user == user) {
            r.cancel.store(true, Ordering::Release);
        }
        None
    }

    /// Refuses new requests, fails queued ones with [`res::CLOSED`] (returned), cancels
    /// running polls. Returns the completions and how many requests are still running.
    pub fn close(&self) -> (Vec<Completion>, usize) {
        let mut st = lock(&self.shared.state);
        st.closed = true;
        let mut out = std::mem::take(&mut st.ready);
        out.extend(
            st.jobs
                .drain(..)
                .map(|r| Completion::new(r.user, res::CLOSED)),
        );
        for r in &st.running {
            r.cancel.store(true, Ordering::Release);
        }
        (out, st.running.len())
    }

    /// Requests queued or running.
    #[must_use]
    pub fn outstanding(&self) -> usize {
        let st = lock(&self.shared.state);
        st.staged.len() + st.jobs.len() + st.running.len() + st.ready.len()
    }
}

fn worker_loop(s: &Shared) {
    loop {
        let (req, cancel) = {
            let mut st = lock(&s.state);
            loop {
                if s.stop.load(Ordering::Acquire) {
                    return;
                }
                if let Some(req) = st.jobs.pop_front() {
                    let cancel = Arc::new(AtomicBool::new(false));
                    st.running.push(Running {
                        user: req.user,
                        cancel: cancel.clone(),
                    });
                    break (req, cancel);
                }
                st = s.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let result = execute(&req, &cancel, &s.stop);
        {
            let mut st = lock(&s.state);
            if let Some(i) = st.running.iter().position(|r| r.user == req.user) {
                st.running.swap_remove(i);
            }
        }
        s.mailbox.push([Completion::new(req.user, result)]);
    }
}

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

impl Drop for Pool {
    fn drop(&mut self) {
        {
            let mut st = lock(&self.shared.state);
            st.closed = true;
            st.staged.clear();
            st.jobs.clear();
            for r in &st.running {
                r.cancel.store(true, Ordering::Release);
            }
        }
        self.shared.stop.store(true, Ordering::Release);
        self.shared.cv.notify_all();
        // Joining waits for running transfers: no caller memory is used after this.
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}
