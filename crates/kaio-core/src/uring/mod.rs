//! The `io_uring` engine: one ring (on the `io-uring` crate), an arena of in-flight requests, a
//! user-space queue, and a small thread pool for what the ring cannot do. A peer of
//! [`crate::aio::AioContext`] and [`crate::pool::Pool`], both [`crate::Engine`]s like it.
//!
//! # Completion path
//! - Loop-driven ([`Mailbox::with_eventfd`]): the mailbox's eventfd is registered with the ring
//!   (`IORING_REGISTER_EVENTFD`, the plain one: caio saw the `_ASYNC` variant miss a wake-up on
//!   a cold disk). [`UringContext::flush`] (the JS thread, once per tick) fills the SQ from the
//!   queue, makes one `io_uring_enter`, then reaps the CQ from the shared mapping without a
//!   system call: page-cache hits complete inside that `io_uring_enter`, so they come back
//!   from `flush` itself. A request that went to an io-wq worker or the device completes later;
//!   its CQE signals the eventfd and the binding calls [`UringContext::collect`], which submits
//!   what is queued and reaps.
//! - A buffered read pushed while nothing is queued or waiting to be returned (a request at
//!   depth 1, or the first of a batch) is first tried at `push` with one
//!   `preadv2(RWF_NOWAIT)` ([`classify::read_cached`]): the non-blocking attempt `io_uring`
//!   itself makes inline, minus the `io_uring_enter`, the descriptor check and the eventfd
//!   signal every CQE raises (README, Performance: depth 1 page cache). Only a read it
//!   finishes (every byte, or a short read that ended at end of file) completes there, from
//!   the next `flush`; the rest of a batch goes to the ring in one `io_uring_enter` as before.
//! - While the requests the last `flush` submitted still wait in the ring (on the device or an
//!   io-wq worker), `push` submits the queue itself each time [`EARLY_SUBMIT_AT`] requests
//!   wait in it, without reaping: the device starts on them while the JS thread makes the
//!   rest of the batch. Completions still come out of `flush` and `collect` only.
//! - Callback mailbox ([`Mailbox::new`], hosts without libuv): the ring signals the context's
//!   own eventfd; a completion thread sleeps on it, reaps, refills the SQ from the queue and
//!   pushes batches into the mailbox. `flush` on the caller's thread still submits (and reaps
//!   the inline completions).
//!
//! Only one thread reaps at a time: every access to the ring happens under one mutex.
//!
//! # Setup flags and the thread rule
//! Loop-driven rings try `SINGLE_ISSUER | DEFER_TASKRUN | SUBMIT_ALL | COOP_TASKRUN`, then drop
//! flags one at a time while setup answers EINVAL (see [`UringContext::setup_flags`]).
//! `COOP_TASKRUN` is used only together with `DEFER_TASKRUN`: alone it would leave task work
//! (the completion of a device or io-wq request) waiting until the JS thread happened to enter
//! the kernel, while it sleeps in `epoll_wait`. With `DEFER_TASKRUN` a punted completion is
//! queued as task work and only posted when the submitter enters with `GETEVENTS`; the kernel
//! signals the registered eventfd when it queues that work (tested here:
//! `tests/uring.rs::a_late_completion_wakes_a_sleeping_loop`), and `collect` enters with
//! `GETEVENTS` whenever requests are in flight.
//!
//! **In loop-driven mode the ring must be created, submitted to (`push` is free, but `flush`,
//! `collect`, `cancel`, `close`) and dropped on the one thread that called [`UringContext::new`]**
//! (the JS thread): `SINGLE_ISSUER` makes the kernel refuse `io_uring_enter` from any other
//! task (EEXIST), and `DEFER_TASKRUN` posts completions only to that task. A drop on another
//! thread cannot wait for the kernel, so it leaks the ring and the in-flight slots rather than
//! free memory the kernel may still write.
//!
//! A callback-mailbox ring uses only `SUBMIT_ALL` (another thread reaps and submits).
//!
//! # Results
//! The same as [`crate::aio::AioContext`]'s: the descriptor check ([`crate::classify`])
//! gives ESPIPE to pipes, FIFOs, sockets and terminals for positional ops, EISDIR to directory
//! reads, EBADF to bad descriptors; a negative offset is EINVAL (`io_uring` would read -1 as "the
//! file position"); misaligned `O_DIRECT` is EINVAL in the completion. `res2` is always 0:
//! `io_uring` has no second result, and CQE flags are not exposed. A transfer longer than
//! `u32::MAX` bytes is clamped (the SQE length is 32 bits) and completes short.
//!
//! # Cancellation
//! A queued request is removed and completes with [`res::CANCELLED`]. An in-flight one gets an
//! `IORING_OP_ASYNC_CANCEL` naming its `user_data`; its CQE then arrives with `-ECANCELED`, or
//! with its real result if it finished first. The kernel can cancel polls, and reads/writes
//! still waiting (queued in io-wq, or armed on a pipe/socket/poll-driven file); it cannot cancel
//! a regular-file read or write already issued to the block layer or running in an io-wq
//! worker, which completes normally. Path ops that change something (open, close, unlink,
//! rename, mkdir, symlink, link, ftruncate, fallocate) are treated like writes: never
//! cancelled once in the ring (a cancelled open may have made a descriptor nobody closes, a
//! cancelled rename may have happened anyway); a statx or an fadvise may be.
//!
//! # Fallback
//! Opcodes are probed at setup (`IORING_REGISTER_PROBE`). A request whose opcode the kernel
//! lacks (`FTRUNCATE` before 6.9, `MKDIRAT`/`SYMLINKAT`/`LINKAT` before 5.15, ...), or that
//! the SQE cannot carry (an fadvise length past 32 bits), or whose
//! CQE answers `-EOPNOTSUPP` (or `-EINVAL`, for a path op), is re-run on a small [`Pool`] owned by the
//! context (created on first use, same mailbox); only the pool's own result reaches the
//! caller. Tests force the path with [`UringOptions::force_fallback`] or
//! `KAIO_URING_FORCE_FALLBACK=readv,poll` (op names as [`crate::Op::syscall`]).
//!
//! # Credentials (CVE-2024-22017)
//! Without SQPOLL the calling thread issues every SQE inside its own `io_uring_enter`, with its
//! credentials at that moment; a request punted to an io-wq worker carries the credentials the
//! submitter had when it was prepared (`io_prep_async_work` takes `get_current_cred()` unless
//! the SQE named a personality; as read from current `io_uring/io_uring.c`, the io-wq workers
//! being threads of the submitting process since 5.12; not re-checked against this machine's
//! kernel source, only by `tests/uring.rs::rings_keep_working_after_setuid`). So a `setuid()` after `new` is honoured by every later request. With
//! SQPOLL (only when asked, [`UringOptions::sqpoll_idle_ms`]) the kernel thread submits with the
//! credentials of the ring's creator: `flush` compares `geteuid`/`getegid`/`getgroups` with the
//! set the ring was made with, and on a change registers a personality for the current
//! credentials (`IORING_REGISTER_PERSONALITY`) and names it on every later SQE; if that fails,
//! requests go to the fallback pool (whose threads share the process's new credentials).
//! Reads, writes, syncs and polls on an open descriptor succeed whoever issues them
//! (permissions were checked at `open`); the path ops (openat, statx, unlinkat, mkdirat, ...)
//! are checked against the credentials above, so they too honour a `setuid()` after `new`
//! (`__test__/credentials.spec.ts` checks open/mkdir/unlink after a drop to nobody, SQPOLL
//! included).
//!
//! # Measured (`examples/uring_vs_aio.rs`, 4 KiB page-cache reads, one thread, 2 shared cores)
//! Depth 1: 160-270k reads/s against kernel AIO's 110-185k; depth 32: 550-775k against
//! 310-630k (noisy machine, three runs). A depth-32 batch costs one `io_uring_enter` (strace:
//! as many enters as flushes). Known cost: CQEs posted inside the flush's own enter still
//! signal the eventfd, so an event loop wakes once more per flush for an empty `collect`
//! (kernel AIO avoids that with "quiet" iocbs). Suppressing it with
//! `IORING_CQ_EVENTFD_DISABLED` around the enter is not done: under `DEFER_TASKRUN` a
//! completion queued while disabled would not signal later, and only `TASKRUN_FLAG` would let
//! the engine notice it.
//!
//! # Memory invariant
//! A request's buffers belong to the caller until its completion comes out of `flush`,
//! `collect` or the mailbox; its iovec array and path strings (the whole request) live in its
//! in-flight slot until its CQE is reaped. [`Drop`] cancels everything, then waits in `io_uring_enter`
//! until every in-flight CQE has been reaped, and only then frees the slots and the ring.

mod probe;
mod sqe;

pub use probe::{probe, setup_failure, DISABLE_ENV, MIN_KERNEL};

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use io_uring::{opcode, EnterFlags, IoUring};

use crate::arena::Arena;
use crate::classify::{self, check_type, copies_long, Attempt, Route};
use crate::engine::Engine;
use crate::mailbox::Mailbox;
use crate::pool::Pool;
use crate::request::{next_to_start, poll_limit, res, Completion, Op, Request};
use crate::sys;
use sqe::{Kind, KINDS};

/// `user_data` of the engine's own cancel SQEs (arena keys never reach it: their index is
/// below the capacity).
const CANCEL_TAG: u64 = u64::MAX;
/// Workers of the fallback pool.
const FALLBACK_POOL_SIZE: u32 = 4;
/// Submit/reap rounds one `collect` (or a completion-thread wake-up) runs before leaving the
/// rest of the queue to the next signal.
const ROUNDS: usize = 4;
/// The kernel's limit on SQ entries (`IORING_MAX_ENTRIES`).
const MAX_ENTRIES: u32 = 32768;
/// Environment variable naming ops to force onto the fallback pool (comma-separated).
pub const FORCE_FALLBACK_ENV: &str = "KAIO_URING_FORCE_FALLBACK";

/// How a ring is set up.
#[derive(Debug, Clone, Default)]
pub struct UringOptions {
    /// `IORING_SETUP_SQPOLL` with this idle time in milliseconds: a kernel thread polls the SQ
    /// (and burns a core while busy). Off unless set.
    pub sqpoll_idle_ms: Option<u32>,
    /// Ops (by [`crate::Op::syscall`] name: `read`, `write`, `readv`, `writev`, `fsync`,
    /// `fdatasync`, `poll`, `open`, `close`, `stat`, `unlink`, `rename`, `mkdir`, `symlink`,
    /// `link`, `ftruncate`, `fallocate`, `fadvise`) served by the fallback pool as if the kernel lacked their opcode:
    /// for tests. Merged with `KAIO_URING_FORCE_FALLBACK`.
    pub force_fallback: Vec<String>,
}

struct Slot {
    /// The request, kept whole: its iovec array and path strings must outlive the CQE, and an `-EOPNOTSUPP`
    /// answer re-runs it on the pool.
    req: Request,
    /// `State::tick` when it was submitted.
    tick: u64,
}

struct State {
    inflight: Arena<Slot>,
    queue: VecDeque<Request>,
    /// Completions decided without the kernel (bad fd, ESPIPE, closed).
    ready: Vec<Completion>,
    closed: bool,
    /// Counts requests that left the queue (see `AioContext`'s `checked`).
    taken: u64,
    /// The descriptor whose check last passed, with `taken` then: while `taken` is unchanged
    /// that request is still queued, so the same number still names a checked file.
    checked: Option<(i32, u64)>,
    /// The descriptor whose on-the-spot read last answered EOPNOTSUPP (its file cannot
    /// honour `RWF_NOWAIT`), not tried again.
    nowait_refused: Option<i32>,
    /// Polls handed to the fallback pool (cancelled on close).
    fallback_polls: Vec<u64>,
    /// Whether each [`Kind`] goes to the ring (probed, minus forced fallbacks).
    native: [bool; KINDS],
    /// Whether some of what was submitted up to the last `flush` (since the one before) was
    /// still in the ring after its reap, waiting on the device or io-wq, not page-cache hits
    /// (polls aside): then `push` submits early (see [`EARLY_SUBMIT_AT`]; `State::note_tick`).
    device_bound: bool,
    /// Counts `flush`es that submitted something: a slot's `tick` tells which one it
    /// belongs to (see `device_bound`).
    tick: u64,
    /// Requests submitted since the last `flush` evaluated `device_bound` (early or not).
    sent: usize,
    /// Whether `push` submitted early since the last `flush`: the on-the-spot read is then
    /// not tried (it is for the first read of a tick, not for the first after each group).
    early: bool,
    /// Polls in the ring (at most [`poll_limit`] of the slots).
    polls: usize,
}

/// The SQPOLL credential watch (see the module docs).
struct Sqpoll {
    creds: sys::Creds,
    personality: Option<u16>,
}

struct Inner {
    ring: IoUring,
    st: State,
    sqpoll: Option<Sqpoll>,
}

struct Shared {
    inner: Mutex<Inner>,
    mailbox: Arc<Mailbox>,
    /// The callback-mailbox mode's eventfd (registered with the ring, watched by the
    /// completion thread); `None` when loop-driven.
    efd: Option<OwnedFd>,
    /// Whether completions are posted only on `GETEVENTS` enters.
    defer: bool,
    /// Whether buffered reads are tried on the spot first ([`classify::read_cached`]): on
    /// unless `KAIO_READ_NOW=0` (for measuring the difference).
    read_now: bool,
    stopping: AtomicBool,
    pool: Mutex<Option<Pool>>,
    fallbacks: AtomicU64,
    /// Reaps that found `IORING_SQ_CQ_OVERFLOW` set.
    overflows: AtomicU64,
    /// The thread that created the ring: the only one that may submit early from `push`
    /// (`SINGLE_ISSUER`), and only when loop-driven without SQPOLL (see [`EARLY_SUBMIT_AT`]).
    early_submitter: Option<std::thread::ThreadId>,
}

/// With this many requests queued while others are in the ring (waiting on the device or an
/// io-wq worker), `push` submits the queue at once instead of leaving it to the tick's
/// `flush`. A device that completes a whole queue at once (this VM's virtio disk raises one
/// interrupt per 30-odd reads at depth 32) otherwise idles while the JS thread settles the
/// batch and makes the next 32 requests; started in eights, it works on the first ones
/// meanwhile (README, Performance: early submission). Fours measured the same, sixteens
/// lost the gain; eights cost 4 extra `io_uring_enter`s per 32 requests. Not while the last
/// flush's requests all completed inside it: page-cache hits complete inside
/// `io_uring_enter`, and one enter per tick is cheaper for them (page cache d32 fell from
/// 440k to 300k reads/s in a trial that submitted every four regardless).
pub const EARLY_SUBMIT_AT: usize = 8;

/// Whether rings submit early (see [`EARLY_SUBMIT_AT`]): on unless `KAIO_EARLY_SUBMIT=0`
/// (read once; for measuring the difference).
fn early_default() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("KAIO_EARLY_SUBMIT").is_none_or(|v| v != "0"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An `io_uring` ring with its queue, fallback pool and (callback mailbox) completion thread.
pub struct UringContext {
    shared: Arc<Shared>,
    capacity: u32,
    flags: &'static str,
    reaper: Option<JoinHandle<()>>,
}

/// Setup flag sets, best first, for a loop-driven ring.
const LOOP_FLAGS: &[&str] = &[
    "SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL|COOP_TASKRUN",
    "SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL",
    "SINGLE_ISSUER|SUBMIT_ALL",
    "SUBMIT_ALL",
    "none",
];
/// Setup flag sets for a ring reaped by the completion thread, or polled by SQPOLL.
const THREAD_FLAGS: &[&str] = &["SUBMIT_ALL", "none"];

fn build_ring(entries: u32, flags: &str, sqpoll: Option<u32>) -> io::Result<IoUring> {
    let mut b = IoUring::builder();
    b.setup_cqsize((entries * 2).max(8)).dontfork();
    for f in flags.split('|') {
        match f {
            "SINGLE_ISSUER" => b.setup_single_issuer(),
            "DEFER_TASKRUN" => b.setup_defer_taskrun(),
            "SUBMIT_ALL" => b.setup_submit_all(),
            "COOP_TASKRUN" => b.setup_coop_taskrun(),
            _ => &mut b,
        };
    }
    if let Some(idle) = sqpoll {
        b.setup_sqpoll(idle);
    }
    b.build(entries)
}

/// Builds a ring with the first flag set in `candidates` the kernel accepts (EINVAL: a flag it
/// does not know, so the next set is tried).
fn open_ring(
    entries: u32,
    candidates: &[&'static str],
    sqpoll: Option<u32>,
) -> io::Result<(IoUring, &'static str)> {
    let mut last = io::Error::from_raw_os_error(libc::EINVAL);
    for &flags in candidates {
        match build_ring(entries, flags, sqpoll) {
            Ok(r) => return Ok((r, flags)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Which kinds go to the ring: the probed opcodes, minus close (always the pool's) and forced
/// fallbacks (`force` and `KAIO_URING_FORCE_FALLBACK`). If the probe itself fails, every kind is tried natively (an
/// `-EOPNOTSUPP` completion still reaches the pool).
fn native_kinds(ring: &IoUring, force: &[String]) -> [bool; KINDS] {
    let mut native = [true; KINDS];
    let mut probe = io_uring::Probe::new();
    let probed = ring.submitter().register_probe(&mut probe).is_ok();
    for (i, k) in sqe::ALL.into_iter().enumerate() {
        native[i] = k
            .opcode()
            .is_some_and(|op| !probed || probe.is_supported(op));
    }
    // IORING_OP_CLOSE of a file without `->flush` (ext4, xfs, ...) closes inline, and the
    // kernel runs that last fput as task work on the submitting thread: for a rewritten ext4
    // file, the writeback `auto_da_alloc` starts at close, on the JavaScript thread. A pool
    // thread's close(2) keeps it there, as libuv's does.
    native[Kind::Close as usize] = false;
    let env = std::env::var(FORCE_FALLBACK_ENV).unwrap_or_default();
    for name in force.iter().map(String::as_str).chain(env.split(',')) {
        if let Some(k) = Kind::from_name(name.trim()) {
            native[k as usize] = false;
        }
    }
    native
}

impl UringContext {
    /// Sets up a ring of `capacity` SQ entries (at most that many requests in flight; more
    /// wait in a queue) and a CQ twice as large, registers the completion eventfd, probes the
    /// opcodes, and in callback-mailbox mode starts the completion thread.
    /// Loop-driven: call on the thread that will submit to and drop it (module docs).
    pub fn new(capacity: u32, mailbox: Arc<Mailbox>, opts: UringOptions) -> io::Result<Self> {
        let UringOptions {
            sqpoll_idle_ms,
            force_fallback,
        } = opts;
        let capacity = capacity.clamp(1, MAX_ENTRIES);
        let entries = capacity.next_power_of_two();
        let loop_fd = mailbox.eventfd();
        let candidates = if loop_fd.is_some() && sqpoll_idle_ms.is_none() {
            LOOP_FLAGS
        } else {
            THREAD_FLAGS
        };
        let (ring, flags) = open_ring(entries, candidates, sqpoll_idle_ms)?;
        // SQPOLL is asked for apart from the candidate sets; say so in what `setup_flags` tells.
        let flags = match (sqpoll_idle_ms.is_some(), flags) {
            (true, "none") => "SQPOLL",
            (true, _) => "SQPOLL|SUBMIT_ALL",
            (false, f) => f,
        };
        let efd = if loop_fd.is_some() {
            None
        } else {
            Some(sys::eventfd()?)
        };
        let signal_fd = loop_fd.unwrap_or_else(|| efd.as_ref().map_or(-1, AsRawFd::as_raw_fd));
        ring.submitter().register_eventfd(signal_fd)?;
        let native = native_kinds(&ring, &force_fallback);
        let sqpoll = sqpoll_idle_ms.map(|_| Sqpoll {
            creds: sys::creds(),
            personality: None,
        });
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                ring,
                st: State {
                    inflight: Arena::with_capacity(capacity),
                    queue: VecDeque::new(),
                    ready: Vec::new(),
                    closed: false,
                    taken: 0,
                    checked: None,
                    nowait_refused: None,
                    fallback_polls: Vec::new(),
                    native,
                    device_bound: false,
                    tick: 0,
                    sent: 0,
                    early: false,
                    polls: 0,
                },
                sqpoll,
            }),
            mailbox,
            efd,
            defer: flags.contains("DEFER_TASKRUN"),
            read_now: classify::read_now_default(),
            stopping: AtomicBool::new(false),
            pool: Mutex::new(None),
            fallbacks: AtomicU64::new(0),
            overflows: AtomicU64::new(0),
            early_submitter: (loop_fd.is_some() && sqpoll_idle_ms.is_none() && early_default())
                .then(|| std::thread::current().id()),
        });
        let reaper = if shared.efd.is_some() {
            let s = shared.clone();
            Some(
                std::thread::Builder::new()
                    .name("kaio-uring-reaper".into())
                    .spawn(move || reaper_loop(&s))?,
            )
        } else {
            None
        };
        Ok(Self {
            shared,
            capacity,
            flags,
            reaper,
        })
    }

    /// The number of requests the ring holds at once.
    #[must_use]
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The setup flag set the kernel accepted, e.g.
    /// `SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL|COOP_TASKRUN`, or `none` (for diagnostics).
    #[must_use]
    pub fn setup_flags(&self) -> &'static str {
        self.flags
    }

    /// Requests re-run on the fallback pool so far (unsupported opcode or `-EOPNOTSUPP`).
    #[must_use]
    pub fn fallbacks(&self) -> u64 {
        self.shared.fallbacks.load(Ordering::Relaxed)
    }

    /// How many reaps found the CQ overflowed (the kernel's backlog was then flushed with an
    /// `io_uring_enter(GETEVENTS)`).
    #[must_use]
    pub fn cq_overflows(&self) -> u64 {
        self.shared.overflows.load(Ordering::Relaxed)
    }
}

impl Engine for UringContext {
    /// Queues a request; it reaches the ring at the next [`flush`](Self::flush) (or
    /// `collect`, or the completion thread, when a slot frees up), or at this push when it
    /// makes a group of [`EARLY_SUBMIT_AT`] while earlier requests wait on the device (its
    /// completion still comes out of `flush` or `collect`). Positional requests on
    /// descriptors that are not files get ESPIPE (see the module docs). A buffered read made
    /// while nothing waits to be submitted or returned is first tried on the spot (see
    /// [`classify::read_cached`]); if the page cache held it all, its completion comes out
    /// of the next `flush` without the ring.
    fn push(&self, req: Request) {
        let positional = req.op.is_positional();
        let mut g = lock(&self.shared.inner);
        let st = &mut g.st;
        if st.closed {
            st.ready.push(Completion::new(req.user, res::CLOSED));
            return;
        }
        if !positional {
            self.shared.enqueue(&mut g, req);
            return;
        }
        if req.offset < 0 {
            st.ready
                .push(Completion::new(req.user, -i64::from(libc::EINVAL)));
            return;
        }
        // Nothing queued before it (so doing it now reorders nothing) and nothing decided
        // and not yet returned (so at depth the rest of a batch still goes to the ring in
        // one `io_uring_enter`).
        // A read forced onto the fallback pool (tests) is not tried either.
        // Nor one on the descriptor whose file last refused NOWAIT (tmpfs): a reused number
        // costs only the attempt, never a result.
        let now = self.shared.read_now
            && !st.early
            && st.native[Kind::of(&req.op) as usize]
            && st.queue.is_empty()
            && st.ready.is_empty()
            && st.nowait_refused != Some(req.fd);
        if !now && st.checked == Some((req.fd, st.taken)) && !copies_long(&req) {
            self.shared.enqueue(&mut g, req);
            return;
        }
        // The system calls run without the lock (fstat can be slow on network filesystems).
        drop(g);
        let attempt = if now {
            classify::read_cached(&req)
        } else {
            Attempt::Engine
        };
        let verdict = match attempt {
            // Decided: the read's own result.
            Attempt::Done(n) => Err(n),
            _ => check_type(&req),
        };
        let mut g = lock(&self.shared.inner);
        let st = &mut g.st;
        if attempt == Attempt::Refused {
            st.nowait_refused = Some(req.fd);
        }
        match verdict {
            Err(r) => st.ready.push(Completion::new(req.user, r)),
            Ok(_) if st.closed => st.ready.push(Completion::new(req.user, res::CLOSED)),
            Ok(Route::Pool) => {
                let mut failed = Vec::new();
                self.shared.to_pool(st, vec![req], &mut failed);
                st.ready.append(&mut failed);
            }
            Ok(Route::Kernel(_)) => {
                st.checked = Some((req.fd, st.taken));
                self.shared.enqueue(&mut g, req);
            }
        }
    }

    /// Fills the SQ from the queue, makes one `io_uring_enter`, and returns every completion
    /// available right after it (page-cache hits, errors decided at push, and in loop-driven
    /// mode the mailbox: fallback-pool results).
    fn flush(&self) -> Vec<Completion> {
        let s = &*self.shared;
        let mut g = lock(&s.inner);
        g.watch_creds();
        let mut out = std::mem::take(&mut g.st.ready);
        s.pump(&mut g, &mut out);
        // With nothing in the ring there is no task work to run: no system call at all.
        let getevents = s.defer && !g.st.inflight.is_empty();
        g.submit(getevents);
        s.reap(&mut g, &mut out);
        g.st.note_tick();
        let queued = !g.st.queue.is_empty();
        drop(g);
        if queued {
            // Slots are full: the next completion's signal brings us back to submit more, but
            // signal anyway in case every CQE was already reaped above.
            s.signal();
        }
        if s.efd.is_none() {
            out.extend(s.mailbox.take());
        }
        out
    }

    /// What the consumer calls when notified (after [`Mailbox::clear_signal`]). Loop-driven:
    /// submits what is queued, enters with `GETEVENTS` when requests are in flight (needed
    /// with `DEFER_TASKRUN`), reaps the CQ and takes the mailbox. Callback mailbox: the
    /// mailbox's contents.
    fn collect(&self) -> Vec<Completion> {
        let s = &*self.shared;
        if s.efd.is_some() {
            return s.mailbox.take();
        }
        let mut g = lock(&s.inner);
        let mut out = std::mem::take(&mut g.st.ready);
        for _ in 0..ROUNDS {
            s.pump(&mut g, &mut out);
            let getevents = s.defer && !g.st.inflight.is_empty();
            g.submit(getevents);
            let reaped = s.reap(&mut g, &mut out);
            if reaped == 0 || g.st.queue.is_empty() {
                break;
            }
        }
        let queued = !g.st.queue.is_empty();
        drop(g);
        if queued {
            s.signal();
        }
        out.extend(s.mailbox.take());
        out
    }

    /// Withdraws request `user`: a queued one is removed and returned as
    /// [`res::CANCELLED`]; an in-flight poll or read gets `IORING_OP_ASYNC_CANCEL` (its CQE
    /// arrives later with `-ECANCELED` or its real result; see the module docs); so does an
    /// in-flight statx or fadvise, which change nothing. An in-flight write, sync or mutating
    /// path op (open, close, unlink, rename, mkdir, symlink, link, ftruncate, fallocate) is
    /// left to finish, as on kernel AIO: cancelling an io-wq worker in the
    /// middle of a blocking write can leave it short, a torn write the caller was told was
    /// aborted.
    fn cancel(&self, user: u64) -> Option<Completion> {
        let s = &*self.shared;
        let mut g = lock(&s.inner);
        if let Some(i) = g.st.queue.iter().position(|r| r.user == user) {
            g.st.queue.remove(i);
            g.st.taken += 1;
            return Some(Completion::new(user, res::CANCELLED));
        }
        let key =
            g.st.inflight
                .iter()
                .find(|(_, slot)| slot.req.user == user)
                .filter(|(_, slot)| {
                    matches!(
                        slot.req.op,
                        Op::Poll { .. }
                            | Op::Read { .. }
                            | Op::Readv { .. }
                            | Op::Statx { .. }
                            | Op::Fadvise { .. }
                    )
                })
                .map(|(k, _)| k);
        if let Some(key) = key {
            g.cancel_keys(&[key]);
            return None;
        }
        drop(g);
        lock(&s.pool).as_ref().and_then(|p| p.cancel(user))
    }

    /// Starts closing: new requests complete with [`res::CLOSED`]; queued polls complete
    /// with [`res::CLOSED`] and in-flight ones are cancelled; queued and in-flight reads,
    /// writes and syncs run to completion (queued ones are still submitted, here and by later
    /// `flush`/`collect` calls). Returns the completions available now and how many requests
    /// remain.
    fn close(&self) -> (Vec<Completion>, usize) {
        let s = &*self.shared;
        let mut g = lock(&s.inner);
        let st = &mut g.st;
        st.closed = true;
        let mut out = std::mem::take(&mut st.ready);
        let before = st.queue.len();
        st.queue.retain(|r| {
            let poll = matches!(r.op, Op::Poll { .. });
            if poll {
                out.push(Completion::new(r.user, res::CLOSED));
            }
            !poll
        });
        st.taken += (before - st.queue.len()) as u64;
        let polls: Vec<u64> = st
            .inflight
            .iter()
            .filter(|(_, slot)| matches!(slot.req.op, Op::Poll { .. }))
            .map(|(k, _)| k)
            .collect();
        let fallback_polls = std::mem::take(&mut st.fallback_polls);
        g.cancel_keys(&polls);
        s.pump(&mut g, &mut out);
        g.submit(s.defer);
        s.reap(&mut g, &mut out);
        let in_ring = g.st.queue.len() + g.st.inflight.len();
        drop(g);
        let pool = lock(&s.pool);
        let mut in_pool = 0;
        if let Some(p) = pool.as_ref() {
            for user in fallback_polls {
                out.extend(p.cancel(user));
            }
            in_pool = p.outstanding();
        }
        drop(pool);
        if s.efd.is_none() {
            out.extend(s.mailbox.take());
        }
        (out, in_ring + in_pool)
    }

    /// Requests queued, in the ring, on the fallback pool, or decided and not yet returned.
    fn outstanding(&self) -> usize {
        let g = lock(&self.shared.inner);
        let n = g.st.queue.len() + g.st.inflight.len() + g.st.ready.len();
        drop(g);
        n + lock(&self.shared.pool)
            .as_ref()
            .map_or(0, Pool::outstanding)
    }
}

impl State {
    /// At the end of a `flush` (after its reap): if anything was submitted since the last
    /// one, `device_bound` says whether some of it is still in the ring, waiting on the
    /// device or an io-wq worker. Polls do not count: one may wait for a socket for hours,
    /// and says nothing of where reads go.
    fn note_tick(&mut self) {
        self.early = false;
        if self.sent == 0 {
            return;
        }
        let tick = self.tick;
        self.device_bound = self
            .inflight
            .iter()
            .any(|(_, slot)| slot.tick == tick && !matches!(slot.req.op, Op::Poll { .. }));
        self.sent = 0;
        self.tick += 1;
    }
}

impl Inner {
    /// Queues `IORING_OP_ASYNC_CANCEL` for each key and submits.
    fn cancel_keys(&mut self, keys: &[u64]) {
        for &key in keys {
            let entry = opcode::AsyncCancel::new(key).build().user_data(CANCEL_TAG);
            for _ in 0..2 {
                // SAFETY: a cancel entry references no memory (only another entry's
                // user_data).
                if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                    break;
                }
                // SQ full of unsubmitted entries: submit them and retry once.
                self.submit(false);
            }
        }
        self.submit(false);
    }
    /// SQPOLL only: registers a personality when the credentials changed since setup (see
    /// the module docs); on failure, every op goes to the fallback pool.
    fn watch_creds(&mut self) {
        let Some(sq) = self.sqpoll.as_mut() else {
            return;
        };
        let now = sys::creds();
        if now == sq.creds {
            return;
        }
        if let Some(old) = sq.personality.take() {
            let _ = self.ring.submitter().unregister_personality(old);
        }
        match self.ring.submitter().register_personality() {
            Ok(id) => sq.personality = Some(id),
            Err(_) => self.st.native = [false; KINDS],
        }
        sq.creds = now;
    }

    /// One `io_uring_enter` submitting the SQ (with `GETEVENTS` when asked, or when the CQ
    /// overflowed); none when there is nothing to do. Errors leave the entries in the SQ for
    /// the next call (EBUSY/EAGAIN: the kernel is short of CQ room or memory).
    fn submit(&mut self, getevents: bool) {
        if self.sqpoll.is_some() {
            // The crate handles SQPOLL's wake-up flag.
            let _ = self.ring.submit();
            return;
        }
        loop {
            let to_submit = self.ring.submission().len() as u32;
            let overflow = self.ring.submission().cq_overflow();
            let flags = if getevents || overflow {
                EnterFlags::GETEVENTS.bits()
            } else {
                0
            };
            if to_submit == 0 && flags == 0 {
                return;
            }
            // SAFETY: no argument pointer is passed; the SQEs were filled under the rules in
            // `pump`.
            match unsafe {
                self.ring
                    .submitter()
                    .enter::<libc::sigset_t>(to_submit, 0, flags, None)
            } {
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                _ => return,
            }
        }
    }
}

impl Shared {
    /// Queues `req` for the ring, then submits the queue at once when [`EARLY_SUBMIT_AT`]
    /// requests wait in it while others are in the ring, on the ring's own thread; what that
    /// submission decides at once waits in `ready` for the next `flush`. Task work is left to
    /// that `flush` (no `GETEVENTS`), so completions still come out in one place.
    fn enqueue(&self, g: &mut Inner, req: Request) {
        g.st.queue.push_back(req);
        if g.st.queue.len() < EARLY_SUBMIT_AT
            || !g.st.device_bound
            || self.early_submitter != Some(std::thread::current().id())
        {
            return;
        }
        let mut out = Vec::new();
        self.pump(g, &mut out);
        g.submit(false);
        g.st.ready.append(&mut out);
        g.st.early = true;
    }

    /// Wakes whoever reaps: the event loop (mailbox eventfd) or the completion thread.
    fn signal(&self) {
        let fd = match &self.efd {
            Some(fd) => fd.as_raw_fd(),
            None => self.mailbox.eventfd().unwrap_or(-1),
        };
        let _ = sys::eventfd_write(fd, 1);
    }

    /// Moves queued requests into free slots and the SQ (or onto the fallback pool); returns
    /// how many entries were added to the SQ.
    fn pump(&self, g: &mut Inner, out: &mut Vec<Completion>) -> usize {
        let Inner { ring, st, sqpoll } = g;
        let personality = sqpoll.as_ref().and_then(|s| s.personality);
        let mut to_pool = Vec::new();
        let mut added = 0;
        {
            let mut sq = ring.submission();
            let limit = poll_limit(st.inflight.capacity());
            while !st.inflight.is_full() && !sq.is_full() {
                let polls = st.polls;
                let Some(req) = next_to_start(&mut st.queue, || polls >= limit, |r| r) else {
                    break;
                };
                st.taken += 1;
                if !st.native[Kind::of(&req.op) as usize] || !sqe::on_ring(&req.op) {
                    to_pool.push(req);
                    continue;
                }
                st.polls += usize::from(req.op.is_poll());
                let Ok(key) = st.inflight.insert(Slot { req, tick: st.tick }) else {
                    unreachable!("checked is_full above")
                };
                let slot = st.inflight.get(key).expect("just inserted");
                let mut entry = sqe::build(&slot.req, key);
                if let Some(p) = personality {
                    entry = entry.personality(p);
                }
                // SAFETY: the entry points at caller memory the Request contract keeps valid
                // until its completion, and at the request's iovec array, owned by its slot
                // until the CQE is reaped (Drop waits for every CQE before freeing slots).
                let pushed = unsafe { sq.push(&entry) };
                debug_assert!(pushed.is_ok(), "checked is_full above");
                added += 1;
            }
        }
        st.sent += added;
        self.to_pool(st, to_pool, out);
        added
    }

    /// Hands requests to the fallback pool (created on first use).
    fn to_pool(&self, st: &mut State, reqs: Vec<Request>, out: &mut Vec<Completion>) {
        if reqs.is_empty() {
            return;
        }
        let mut pool = lock(&self.pool);
        if pool.is_none() {
            match Pool::new(FALLBACK_POOL_SIZE, self.mailbox.clone()) {
                Ok(p) => *pool = Some(p),
                Err(e) => {
                    let errno = -i64::from(e.raw_os_error().unwrap_or(libc::EAGAIN));
                    out.extend(reqs.iter().map(|r| Completion::new(r.user, errno)));
                    return;
                }
            }
        }
        let Some(p) = pool.as_ref() else { return };
        for r in reqs {
            if matches!(r.op, Op::Poll { .. }) {
                st.fallback_polls.push(r.user);
            }
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            p.push(r);
        }
        out.extend(p.flush());
    }

    /// Takes every CQE from the mapping (no system call unless the CQ overflowed: then an
    /// enter with `GETEVENTS` moves the kernel's backlog in); returns how many.
    fn reap(&self, g: &mut Inner, out: &mut Vec<Completion>) -> usize {
        let stopping = self.stopping.load(Ordering::Acquire);
        let mut total = 0;
        let mut to_pool = Vec::new();
        loop {
            let overflow = g.ring.submission().cq_overflow();
            if overflow {
                self.overflows.fetch_add(1, Ordering::Relaxed);
                // SAFETY: no argument pointer; nothing new is submitted.
                let _ = unsafe {
                    g.ring.submitter().enter::<libc::sigset_t>(
                        0,
                        0,
                        EnterFlags::GETEVENTS.bits(),
                        None,
                    )
                };
            }
            let Inner { ring, st, .. } = &mut *g;
            let mut n = 0;
            for cqe in ring.completion() {
                n += 1;
                let key = cqe.user_data();
                if key == CANCEL_TAG {
                    continue;
                }
                // A stale key (already settled) is dropped here.
                let Some(slot) = st.inflight.remove(key) else {
                    continue;
                };
                st.polls -= usize::from(slot.req.op.is_poll());
                let r = cqe.result();
                // A path op whose opcode is newer than parts of its SQE (flags a kernel does
                // not know yet) answers EINVAL where the syscall would work: the pool decides.
                // Such an answer changed nothing, so re-running a mutating op is safe, but for
                // an open that creates: the kernel may create the file and then refuse a flag
                // (O_DIRECT on a file system without it), and a re-run would say EEXIST.
                let creates =
                    matches!(&slot.req.op, Op::Openat { flags, .. } if flags & libc::O_CREAT != 0);
                let retry = r == -libc::EOPNOTSUPP
                    || (r == -libc::EINVAL && slot.req.op.is_metadata() && !creates);
                if retry && !stopping {
                    to_pool.push(slot.req);
                } else {
                    out.push(Completion::new(slot.req.user, i64::from(r)));
                }
            }
            total += n;
            if n == 0 && !overflow {
                break;
            }
        }
        self.to_pool(&mut g.st, to_pool, out);
        total
    }
}

/// The callback-mailbox completion thread: sleeps on the ring's eventfd, reaps, refills.
fn reaper_loop(s: &Shared) {
    let Some(efd) = s.efd.as_ref().map(AsRawFd::as_raw_fd) else {
        return;
    };
    let mut out = Vec::new();
    loop {
        if sys::eventfd_read(efd).is_err() || s.stopping.load(Ordering::Acquire) {
            return;
        }
        {
            let mut g = lock(&s.inner);
            for _ in 0..ROUNDS {
                let reaped = s.reap(&mut g, &mut out);
                let added = s.pump(&mut g, &mut out);
                if added > 0 {
                    g.submit(false);
                }
                if reaped == 0 && added == 0 {
                    break;
                }
            }
        }
        if !out.is_empty() {
            s.mailbox.push(out.drain(..));
        }
    }
}

impl Drop for UringContext {
    /// Cancels everything, waits until every in-flight CQE is reaped, then frees (the memory
    /// invariant in the module docs is enforced here).
    fn drop(&mut self) {
        let s = &*self.shared;
        s.stopping.store(true, Ordering::Release);
        if let Some(h) = self.reaper.take() {
            s.signal();
            let _ = h.join();
        }
        let mut g = lock(&s.inner);
        g.st.closed = true;
        // Never submitted: nothing of theirs reached the kernel.
        g.st.queue.clear();
        let keys: Vec<u64> = g.st.inflight.iter().map(|(k, _)| k).collect();
        g.cancel_keys(&keys);
        let mut sink = Vec::new();
        s.reap(&mut g, &mut sink);
        while !g.st.inflight.is_empty() {
            let to_submit = g.ring.submission().len() as u32;
            // SAFETY: no argument pointer; waits for at least one CQE.
            let r = unsafe {
                g.ring.submitter().enter::<libc::sigset_t>(
                    to_submit,
                    1,
                    EnterFlags::GETEVENTS.bits(),
                    None,
                )
            };
            match r {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(_) => {
                    // Cannot wait (EEXIST: dropped on a thread other than the ring's single
                    // issuer). The kernel may still write into slots and caller memory: leak
                    // the ring and the slots instead of freeing them.
                    drop(g);
                    std::mem::forget(self.shared.clone());
                    return;
                }
            }
            s.reap(&mut g, &mut sink);
        }
        drop(g);
        // The pool joins its workers (running transfers finish first).
        drop(lock(&s.pool).take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_sets_drop_one_flag_at_a_time() {
        for w in LOOP_FLAGS.windows(2) {
            let a = w[0].split('|').count();
            let b = if w[1] == "none" {
                0
            } else {
                w[1].split('|').count()
            };
            assert_eq!(a, b + 1, "{w:?}");
        }
        assert!(!THREAD_FLAGS.iter().any(|f| f.contains("SINGLE_ISSUER")));
    }

    #[test]
    fn loop_driven_ring_records_the_accepted_flags() {
        if !probe().available {
            eprintln!("skipped: {}", probe().reason);
            return;
        }
        let mb = Arc::new(Mailbox::with_eventfd().unwrap());
        let c = UringContext::new(4, mb, UringOptions::default()).unwrap();
        assert!(LOOP_FLAGS.contains(&c.setup_flags()));
        // Linux 6.1+ accepts the full set.
        let v = crate::probe::parse_release(&crate::sys::kernel_release().unwrap()).unwrap();
        if v >= (6, 1) {
            assert_eq!(c.setup_flags(), LOOP_FLAGS[0]);
        }
        let cb = Arc::new(Mailbox::new(Box::new(|| {})));
        let c = UringContext::new(4, cb, UringOptions::default()).unwrap();
        assert!(THREAD_FLAGS.contains(&c.setup_flags()));
    }
}
