//! The thread backend: a pool of worker threads doing `pread`/`pwrite`/`preadv2`/`pwritev2`/
//! `fsync`/`fdatasync`/`poll` and the path calls (`openat`, `statx`, `renameat`, ...), with its own threads (not libuv's), completions handed to the
//! same [`Mailbox`] as the kernel backend.
//!
//! Here the queue, the workers and cancellation; `run.rs`, the blocking call each request
//! makes (through [`crate::sys`]); `probe.rs`, the (always positive) capability answer.
//!
//! Memory invariant: a request's buffers are used only by the worker running it; dropping the
//! pool joins every worker, so no caller memory is touched after `drop` returns.

#[cfg(target_os = "linux")]
mod copy;
mod probe;
mod run;

pub use probe::probe;
pub use run::execute;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::mailbox::Mailbox;
use crate::request::{next_to_start, poll_limit, res, Completion, Request};

/// Workers a pool starts when none is asked for.
pub const DEFAULT_POOL_SIZE: u32 = 8;
/// Most workers one pool may have.
pub const MAX_POOL_SIZE: u32 = 1024;

struct Running {
    user: u64,
    /// A poll: it may hold its worker for hours, so at most [`poll_limit`] workers run polls.
    poll: bool,
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
    /// `jobs.len()`, readable without the lock (by the spinning worker).
    queued: AtomicUsize,
    /// Whether a worker is spinning for the next job (at most one does).
    spinning: AtomicBool,
    /// How many workers may run polls at once ([`poll_limit`] of the pool's size).
    poll_limit: usize,
    /// Set by [`Pool::detach_when_idle`].
    detach: AtomicBool,
}

/// How long a worker that just finished a job waits, spinning, for the next one before it
/// sleeps. A caller that awaits one request and then makes the next (depth 1) has it within
/// tens of microseconds; a sleeping worker costs a futex wake-up, and on a virtual machine
/// whose idle vCPUs halt, the wake of that vCPU: about 50 µs measured here. One worker at a
/// time spins, for at most this long after its last job. `KAIO_POOL_SPIN_US` overrides it
/// (0: never spin; the memory checker sets that, since valgrind runs one thread at a time).
const SPIN: Duration = Duration::from_micros(100);

/// [`SPIN`], or `KAIO_POOL_SPIN_US` (read once).
fn spin_for() -> Duration {
    static SPIN_FOR: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *SPIN_FOR.get_or_init(|| {
        std::env::var("KAIO_POOL_SPIN_US")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(SPIN, Duration::from_micros)
    })
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
        let size = size.clamp(1, MAX_POOL_SIZE);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                staged: Vec::new(),
                jobs: VecDeque::new(),
                running: Vec::new(),
                ready: Vec::new(),
                closed: false,
            }),
            cv: Condvar::new(),
            queued: AtomicUsize::new(0),
            spinning: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            mailbox,
            poll_limit: poll_limit(size as usize),
            detach: AtomicBool::new(false),
        });
        let mut pool = Self {
            shared,
            workers: Vec::new(),
        };
        for i in 0..size {
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

    /// Lets [`Drop`] leave idle workers to exit by themselves instead of joining them, when
    /// nothing is queued or running (so no caller memory is in use). For drops nobody waits
    /// for (garbage collection, env teardown): joining 16 workers costs about 0.5 ms, and a
    /// collection of 300 idle contexts stalled the event loop for 90-150 ms.
    pub fn detach_when_idle(&self) {
        self.shared.detach.store(true, Ordering::Relaxed);
    }
}

impl Engine for Pool {
    /// Stages a request; the next [`flush`](Self::flush) hands it to the workers. Flags a
    /// platform cannot honour fail with ENOTSUP rather than being dropped silently.
    fn push(&self, req: Request) {
        let mut st = lock(&self.shared.state);
        if st.closed {
            st.ready.push(Completion::new(req.user, res::CLOSED));
            return;
        }
        st.staged.push(req);
    }

    /// Hands staged requests to the workers; returns completions decided without a worker
    /// (requests pushed after close).
    fn flush(&self) -> Vec<Completion> {
        let mut st = lock(&self.shared.state);
        let n = st.staged.len();
        if n > 0 {
            let staged = std::mem::take(&mut st.staged);
            st.jobs.extend(staged);
            self.shared.queued.store(st.jobs.len(), Ordering::SeqCst);
        }
        let ready = std::mem::take(&mut st.ready);
        drop(st);
        // A spinning worker takes one job without a wake-up. (If it stops spinning after this
        // check, it looks at the queue under the lock before it sleeps: nothing is missed.)
        let spinner = self.shared.spinning.load(Ordering::SeqCst);
        if n == 1 && !spinner {
            self.shared.cv.notify_one();
        } else if n > 1 {
            self.shared.cv.notify_all();
        }
        ready
    }

    /// Takes the completions waiting in the mailbox (the consumer has reset its eventfd).
    fn collect(&self) -> Vec<Completion> {
        self.shared.mailbox.take()
    }

    /// Withdraws request `user`: a queued one is removed (returned as cancelled); a running
    /// `poll` is told to stop (it completes with 0, no events); other running requests
    /// run to completion.
    fn cancel(&self, user: u64) -> Option<Completion> {
        let mut st = lock(&self.shared.state);
        if let Some(i) = st.staged.iter().position(|r| r.user == user) {
            st.staged.remove(i);
            return Some(Completion::new(user, res::CANCELLED));
        }
        if let Some(i) = st.jobs.iter().position(|r| r.user == user) {
            st.jobs.remove(i);
            self.shared.queued.store(st.jobs.len(), Ordering::SeqCst);
            return Some(Completion::new(user, res::CANCELLED));
        }
        if let Some(r) = st.running.iter().find(|r| r.user == user) {
            r.cancel.store(true, Ordering::Release);
        }
        None
    }

    /// Refuses new requests, fails queued ones with [`res::CLOSED`] (returned), cancels
    /// running polls. Returns the completions and how many requests are still running.
    fn close(&self) -> (Vec<Completion>, usize) {
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
    fn outstanding(&self) -> usize {
        let st = lock(&self.shared.state);
        st.staged.len() + st.jobs.len() + st.running.len() + st.ready.len()
    }
}

/// After a job: spins up to [`SPIN`] for the next one, if no other worker is spinning.
fn spin_for_next(s: &Shared) {
    let spin = spin_for();
    if spin.is_zero() {
        return;
    }
    if s.spinning
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return;
    }
    let start = Instant::now();
    while s.queued.load(Ordering::SeqCst) == 0
        && !s.stop.load(Ordering::Acquire)
        && start.elapsed() < spin
    {
        std::hint::spin_loop();
    }
    s.spinning.store(false, Ordering::SeqCst);
}

fn worker_loop(s: &Shared) {
    let mut worked = false;
    loop {
        if worked {
            spin_for_next(s);
        }
        worked = true;
        let (req, cancel) = {
            let mut st = lock(&s.state);
            loop {
                if s.stop.load(Ordering::Acquire) {
                    return;
                }
                // Counted only when a poll is next (a guard allows no split borrow: reborrow).
                let State { jobs, running, .. } = &mut *st;
                let polls_full = || running.iter().filter(|r| r.poll).count() >= s.poll_limit;
                if let Some(req) = next_to_start(jobs, polls_full, |r| r) {
                    s.queued.store(st.jobs.len(), Ordering::SeqCst);
                    // A flush that saw a spinner woke nobody; if this took another job's
                    // turn, pass the wake-up on, so no job waits behind a long one.
                    if !st.jobs.is_empty() {
                        s.cv.notify_one();
                    }
                    let cancel = Arc::new(AtomicBool::new(false));
                    st.running.push(Running {
                        user: req.user,
                        poll: req.op.is_poll(),
                        cancel: cancel.clone(),
                    });
                    break (req, cancel);
                }
                st = s.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let done = execute(&req, &cancel, &s.stop);
        {
            let mut st = lock(&s.state);
            if let Some(i) = st.running.iter().position(|r| r.user == req.user) {
                st.running.swap_remove(i);
            }
        }
        s.mailbox.push([done]);
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
            // Under the lock: a worker checks `stop` under it and then waits, which releases
            // it, so this store lands either before its check or while it waits, and the
            // notify below reaches it. (Stored after unlocking, it could fall between the
            // check and the wait: a lost wake-up, and `join` waits forever.)
            self.shared.stop.store(true, Ordering::Release);
            // Idle (jobs were cleared above): the workers see `stop` and exit on their own,
            // unjoined.
            if self.shared.detach.load(Ordering::Relaxed) && st.running.is_empty() {
                self.workers.clear();
            }
        }
        self.shared.cv.notify_all();
        // Joining waits for running transfers: no caller memory is used after this.
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_for(mb: &Mailbox, user: u64, got: &mut Vec<Completion>) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !got.iter().any(|c| c.user == user) {
            assert!(
                Instant::now() < deadline,
                "request {user} never ran: {got:?}"
            );
            got.extend(mb.take());
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// A job pushed while a worker spins is never left behind a long job the spinner then
    /// took first, and dropping the pool right after a job (while its worker spins) returns.
    #[test]
    fn no_job_waits_behind_a_long_one_and_drop_returns() {
        let mut fds = [0; 2];
        // SAFETY: room for two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        for round in 0..50 {
            let mb = Arc::new(Mailbox::with_eventfd().unwrap());
            let pool = Pool::new(2, mb.clone()).unwrap();
            let mut got = Vec::new();
            // A quick job, so that a worker spins after it.
            pool.push(Request::new(1, fds[1], 0, crate::Op::Fsync));
            assert!(pool.flush().is_empty());
            wait_for(&mb, 1, &mut got);
            // Now a poll that never becomes ready (the long job), then a quick one.
            pool.push(Request::new(2, fds[0], 0, crate::Op::Poll { events: 1 }));
            pool.push(Request::new(3, fds[1], 0, crate::Op::Fsync));
            assert!(pool.flush().is_empty());
            wait_for(&mb, 3, &mut got);
            assert!(
                !got.iter().any(|c| c.user == 2),
                "round {round}: the poll completed"
            );
            let _ = pool.cancel(2);
            wait_for(&mb, 2, &mut got);
            pool.push(Request::new(4, fds[1], 0, crate::Op::Fsync));
            assert!(pool.flush().is_empty());
            wait_for(&mb, 4, &mut got);
            drop(pool);
        }
        // SAFETY: the test's own descriptors, after every pool is gone.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
