//! The kernel AIO backend: one `io_setup` context, an arena of iocbs, a user-space queue,
//! batched `io_submit`, and a completion thread.
//!
//! A request's life, by file: here the context (`push` with the descriptor check, `flush`
//! and `collect`, `cancel`, `close`, the completion thread, and `Drop`, which waits for the
//! kernel); `iocbs.rs`, the iocb table the kernel shares; `submit.rs`, queued requests into
//! iocbs, `io_submit` batches and `io_getevents` reaps; `nowait.rs`, the `RWF_NOWAIT` attempt
//! and the hand-off of what it did not finish to the context's pool; `relay.rs`, polls the
//! kernel refuses (EINVAL: a FIFO opened read-write) resubmitted through an epoll instance;
//! `probe.rs`, whether kernel AIO works here, and why not.
//!
//! Where kernel completions are signalled depends on the mailbox:
//! - an eventfd mailbox ([`Mailbox::with_eventfd`], "loop-driven"): iocbs point at the
//!   mailbox's eventfd, which the caller's event loop watches. A completion wakes the event
//!   loop directly, and the caller reaps it with [`AioContext::flush`]: one thread hop per
//!   completion, as fio's. The completion thread only submits (and reaps what it submitted)
//!   when the caller hands submission over at high depth;
//! - a callback mailbox: iocbs point at the context's own eventfd, the completion thread
//!   sleeps on it, reaps, refills and hands batches to the mailbox (two hops: kernel ->
//!   completion thread -> caller).
//!
//! In both, [`AioContext::flush`] on the caller's thread submits and reaps right after
//! `io_submit`: buffered I/O completes inside `io_submit` (kernel fact 7), so its event is
//! already in the ring and the request never pays a thread hop.
//!
//! Buffered reads and writes of regular files and block devices finish inside `io_submit`
//! (their page-cache work runs there), so they are submitted without an eventfd to signal
//! ("quiet") when the caller's thread submits: it reaps them right after, and signalling an
//! eventfd per request cost 20% of throughput at page-cache depth 32. Should one still be in flight after a reap
//! (a filesystem that completes buffered I/O later, or `O_DIRECT` set with `fcntl` after the
//! check), the reap signals the eventfd itself, so someone reaps again: slower, never stuck;
//! and from then on every request of the context signals (a filesystem that completes
//! buffered I/O later would otherwise make the event loop spin through each request).
//!
//! Buffered reads and writes are also submitted with `RWF_NOWAIT` (see [`NOWAIT_POOL_SIZE`]
//! and `nowait_allowed`): a page-cache hit still completes inside `io_submit`, but a miss
//! answers EAGAIN at once instead of reading the disk on the caller's thread (kernel fact 7).
//! Such a request, and one whose filesystem refuses NOWAIT (EOPNOTSUPP) or that read only a
//! cached prefix, is not finished: it is run again, without NOWAIT, on a [`Pool`] the context
//! owns, whose completion comes back through the same mailbox. The caller sees one result.
//! A buffered read pushed while nothing is queued or waiting to be returned is first tried
//! at `push` itself with one `preadv2(RWF_NOWAIT)` (`classify::read_cached`, shared with the
//! `io_uring` engine): the same non-blocking page-cache copy `io_submit` would make, without
//! `io_submit`, `io_getevents` and the descriptor check. Only a read it finishes completes
//! there (its completion comes out of the next `flush`); anything else takes the path above.
//! Path ops (open, close, stat, unlink, rename, mkdir, symlink, link, ftruncate, fallocate,
//! fadvise), for which
//! kernel AIO has no opcode, go straight to the same pool at `push` (its workers start them at
//! the next `flush`); they are not counted in [`AioContext::handed_off`].
//! Requests in flight together are not ordered among themselves (as with `O_DIRECT` and the
//! thread backend): a write that went to the pool can land after a later one that did not.
//!
//! Memory invariant: a request's buffers belong to the caller until its completion comes out
//! of [`AioContext::flush`] or the mailbox. Dropping the context runs `io_destroy`, which
//! blocks until the kernel has finished every request, then joins the pool's workers, before
//! anything else is freed; a context dropped unclosed (garbage collection, exit) with nothing
//! in flight is destroyed on a background thread instead (`destroyer`: `io_destroy` takes
//! tens of milliseconds even then). A request moves from the kernel to the pool under the state lock,
//! so it is always counted once (in flight, or in the pool) until its completion is handed
//! out. The iocbs themselves are memory the kernel writes (`io_submit` stores `aio_key`):
//! `iocbs.rs` holds them in `UnsafeCell`s reached only through raw pointers.

mod iocbs;
mod nowait;
mod probe;
mod relay;
mod submit;

use iocbs::IocbTable;
use nowait::nowait_default;
pub use nowait::NOWAIT_POOL_SIZE;
pub use probe::{probe, MIN_KERNEL};

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;

use crate::arena::Arena;
use crate::classify::{classify, copies_long, read_cached, read_now_default, Attempt, Route};
use crate::engine::Engine;
use crate::mailbox::Mailbox;
use crate::pool::Pool;
use crate::request::{res, Completion, Request};
use crate::sys::{self, AioContextT, Iocb};

/// How many submit/reap rounds `flush` runs on the caller's thread before leaving the rest
/// of the queue to the completion thread (bounds how long one flush can block).
const INLINE_ROUNDS: usize = 4;
/// With this many requests in the kernel, `flush` leaves submission to the completion thread
/// instead of calling `io_submit` itself: at low depth inline submit + reap saves the thread
/// hop (10x at depth 1 on page cache), at high depth the other core doing the submits (and the
/// page-cache copies inside them) pipelines better (see benchmark/RESULTS.md).
pub const OFFLOAD_AT: usize = 8;
/// With this many requests queued and in the kernel together, `flush` hands submission to the
/// completion thread even if none are in flight: buffered reads complete inside `io_submit`,
/// so their count in flight stays near zero, and at high depth the page-cache copies are
/// better done on the other core while this thread settles promises (page cache 4k d128:
/// 322k -> 447k IOPS; d32 and below unchanged, so they keep the cheaper inline path).
pub const OFFLOAD_BATCH: usize = 64;

struct Slot {
    user: u64,
    /// Kept until completion so cancellation can name the iocb by address; the kernel copies
    /// iovec arrays at submit time, so this is not a lifetime requirement for them.
    iov: Option<Box<[libc::iovec]>>,
    /// A buffered read or write of a regular file or block device (queued as quiet).
    buffered: bool,
    /// kaio added `RWF_NOWAIT` to this request (the caller did not ask for it).
    nowait: bool,
    /// A poll (counted in `State::polls`).
    poll: bool,
}

struct State {
    inflight: Arena<Slot>,
    /// One iocb per arena slot, at a stable address (`io_cancel` matches by address); shared
    /// with the kernel, so reached only through raw pointers (see `iocbs.rs`).
    iocbs: IocbTable,
    /// Queued requests, each with whether its completion signals the eventfd (see the
    /// module docs: `false` for buffered reads and writes).
    queue: VecDeque<(Request, bool)>,
    /// Requests in the kernel whose completion signals nothing.
    quiet: usize,
    /// Polls in the kernel (at most `request::poll_limit` of the slots).
    polls: usize,
    /// Cleared once a quiet request outlived the reap after its submit: no more quiet ones.
    quiet_ok: bool,
    /// Completions decided without the kernel (bad fd, ESPIPE, submit errors).
    ready: Vec<Completion>,
    closed: bool,
    /// Counts requests that left the queue (submitted or withdrawn; after close nothing is
    /// queued again).
    taken: u64,
    /// The descriptor whose type check last passed, with `taken` at the time: while `taken`
    /// is unchanged, the request that passed is still queued, so a request pushed now for the
    /// same descriptor number goes to the same file (or, if the descriptor was closed and
    /// reused meanwhile, the queued request already does not): it skips the check. Saves
    /// an `fstat` per request at depth (13% of CPU at page-cache 4k depth 32). The third
    /// member is the check's verdict on signalling (see `classify`).
    checked: Option<(i32, u64, bool)>,
    /// Whether buffered requests get `RWF_NOWAIT` (see [`AioContext::set_nowait`]).
    nowait: bool,
    /// Set, for reads (`[0]`) or writes (`[1]`), once a kaio-added `RWF_NOWAIT` was refused
    /// with EOPNOTSUPP: that kind of request is no longer sent with NOWAIT by this context.
    /// Per context, not per descriptor: descriptor numbers are reused, a per-file key would
    /// cost an `fstat` per request, and ext4 (which refuses NOWAIT buffered writes) refuses
    /// it for every file; a wrong guess costs speed (blocking `io_submit`, as before NOWAIT),
    /// never a result.
    nowait_refused: [bool; 2],
    /// Polls relayed through an epoll instance (see `relay.rs`), by request: queued or in
    /// the kernel until their completion.
    relays: HashMap<u64, relay::Relay>,
}

impl State {
    /// Takes request `key` out of the kernel's hands (reaped, refused or requeued): its slot
    /// and a copy of its iocb as submitted, or `None` for a stale key.
    fn release(&mut self, key: u64) -> Option<(Slot, Iocb)> {
        let slot = self.inflight.remove(key)?;
        self.polls -= usize::from(slot.poll);
        // SAFETY: every caller releases a request the kernel is done with (its event was
        // reaped, or io_submit refused it and returned), under the state lock (`&mut self`);
        // the slot was just freed, and cannot be reused before this returns.
        let iocb = unsafe { self.iocbs.load(key) };
        if iocb.aio_flags & sys::IOCB_FLAG_RESFD == 0 {
            self.quiet -= 1;
        }
        Some((slot, iocb))
    }
}

struct Shared {
    ctx: AioContextT,
    /// Wakes the completion thread (submission handed over, stop); with a callback mailbox
    /// also the target of kernel completions.
    efd: OwnedFd,
    /// Where kernel completions are signalled: the mailbox's eventfd, or `efd`.
    resfd: u32,
    /// Whether the caller's event loop watches the mailbox's eventfd (see the module docs).
    loop_driven: bool,
    /// Whether buffered reads are tried on the spot first (`classify::read_cached`): on
    /// unless `KAIO_READ_NOW=0`.
    read_now: bool,
    state: Mutex<State>,
    /// Serialises submitters (caller thread and completion thread) so the queue stays FIFO.
    submit_lock: Mutex<()>,
    /// Held by `flush` across submit + inline reap, and by the completion thread while it
    /// reaps: a buffered request completes inside `io_submit` and signals the eventfd, and
    /// without this the woken thread could take the event the caller is about to reap,
    /// turning a zero-hop completion into a two-hop one.
    reap_lock: Mutex<()>,
    stopping: AtomicBool,
    mailbox: Arc<Mailbox>,
    /// Re-runs requests whose kaio-added `RWF_NOWAIT` attempt did not finish them; started
    /// on first use (`None` if its threads could not be started: such requests then run on
    /// the thread that reaped them, blocking, as without NOWAIT).
    pool: OnceLock<Option<Pool>>,
    /// Requests handed to `pool` so far.
    handed_off: AtomicU64,
    /// Set by [`AioContext::destroy_in_background`].
    background_destroy: AtomicBool,
}

// SAFETY: `State` holds raw pointers only inside queued `Request`s (Send by contract), the
// slots' iovec copies (plain addresses of caller memory, same contract) and the iocb table,
// which Rust touches only under the mutex and the kernel only as `iocbs.rs` describes; the
// kernel context handle is a number.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A kernel AIO context with its completion thread.
pub struct AioContext {
    shared: Arc<Shared>,
    capacity: u32,
    reaper: Option<JoinHandle<()>>,
}

impl AioContext {
    /// `io_setup(capacity)` plus an eventfd and the completion thread.
    pub fn new(capacity: u32, mailbox: Arc<Mailbox>) -> std::io::Result<Self> {
        let capacity = capacity.max(1);
        let efd = sys::eventfd()?;
        let loop_fd = mailbox.eventfd();
        let resfd = loop_fd.unwrap_or(efd.as_raw_fd()) as u32;
        let ctx = sys::io_setup(capacity)?;
        let shared = Arc::new(Shared {
            ctx,
            efd,
            resfd,
            loop_driven: loop_fd.is_some(),
            read_now: read_now_default(),
            state: Mutex::new(State {
                inflight: Arena::with_capacity(capacity),
                iocbs: IocbTable::new(capacity),
                queue: VecDeque::new(),
                quiet: 0,
                polls: 0,
                quiet_ok: true,
                ready: Vec::new(),
                closed: false,
                taken: 0,
                checked: None,
                nowait: nowait_default(),
                nowait_refused: [false; 2],
                relays: HashMap::new(),
            }),
            submit_lock: Mutex::new(()),
            reap_lock: Mutex::new(()),
            stopping: AtomicBool::new(false),
            mailbox,
            pool: OnceLock::new(),
            handed_off: AtomicU64::new(0),
            background_destroy: AtomicBool::new(false),
        });
        let s = shared.clone();
        let reaper = std::thread::Builder::new()
            .name("kaio-reaper".into())
            .spawn(move || reaper_loop(&s));
        let reaper = match reaper {
            Ok(h) => h,
            Err(e) => {
                // SAFETY: nothing was submitted on this fresh context.
                let _ = unsafe { sys::io_destroy(ctx) };
                return Err(e);
            }
        };
        Ok(Self {
            shared,
            capacity,
            reaper: Some(reaper),
        })
    }

    /// The number of requests the kernel holds at once.
    #[must_use]
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    fn submit_and_reap(&self) -> Vec<Completion> {
        let s = &*self.shared;
        {
            let mut st = lock(&s.state);
            if st.inflight.len() >= OFFLOAD_AT
                || st.inflight.len() + st.queue.len() >= OFFLOAD_BATCH
            {
                let mut out = std::mem::take(&mut st.ready);
                let queued = !st.queue.is_empty();
                drop(st);
                if queued {
                    // Wake the completion thread: it submits, reaps and refills.
                    let _ = sys::eventfd_write(s.efd.as_raw_fd(), 1);
                }
                if s.loop_driven {
                    let _reaping = lock(&s.reap_lock);
                    s.reap(&mut out);
                    out.extend(s.mailbox.take());
                }
                return out;
            }
        }
        let _reaping = lock(&s.reap_lock);
        let mut out = std::mem::take(&mut lock(&s.state).ready);
        let mut queued = false;
        for _ in 0..INLINE_ROUNDS {
            s.pump(&mut out, false);
            let reaped = s.reap(&mut out);
            queued = !lock(&s.state).queue.is_empty();
            if reaped == 0 || !queued {
                break;
            }
        }
        // Requests left queued (a small ring, or the rounds ran out) would wait for a
        // completion's signal, and quiet ones give none: signal now, so that whoever waits on
        // the eventfd (the event loop, or the completion thread) comes back to submit them.
        if queued {
            let _ = sys::eventfd_write(s.resfd as i32, 1);
        }
        if s.loop_driven {
            out.extend(s.mailbox.take());
        }
        out
    }

    /// How many requests so far were re-run on the context's pool because their kaio-added
    /// `RWF_NOWAIT` attempt did not finish them (page-cache misses, mostly). For tests and
    /// diagnostics.
    #[must_use]
    pub fn handed_off(&self) -> u64 {
        self.shared.handed_off.load(Ordering::Relaxed)
    }

    /// Turns the `RWF_NOWAIT` attempt for buffered reads and writes on or off for requests
    /// submitted from now on (default: on, unless the environment variable `KAIO_NOWAIT` is
    /// `0`). Off, a page-cache miss is read inside `io_submit` on the submitting thread. For
    /// benchmarks and as a kill switch.
    pub fn set_nowait(&self, enabled: bool) {
        lock(&self.shared.state).nowait = enabled;
    }

    /// Lets [`Drop`] hand the kernel context to a background thread when nothing is in
    /// flight (`destroyer`), instead of waiting in `io_destroy` (about 35 ms, an RCU grace
    /// period) on the dropping thread. For drops nobody waits for (garbage collection, env
    /// teardown at exit); `close()` keeps destroying in place, so a loop that creates and
    /// closes contexts never runs ahead of the kernel's `aio-max-nr`.
    pub fn destroy_in_background(&self) {
        self.shared
            .background_destroy
            .store(true, Ordering::Relaxed);
    }
}

impl Engine for AioContext {
    /// Queues a request; it reaches the kernel at the next [`flush`](Self::flush) (or when the
    /// completion thread frees a slot). Descriptors that kernel AIO would serve by blocking
    /// inside `io_submit` (pipes, FIFOs, sockets, terminals) are refused with ESPIPE, as
    /// `pread` does.
    fn push(&self, req: Request) {
        let positional = req.op.is_positional();
        let mut st = lock(&self.shared.state);
        if st.closed {
            st.ready.push(Completion::new(req.user, res::CLOSED));
            return;
        }
        if req.op.is_metadata() {
            // Kernel AIO has no opcode for path ops: they run on the context's pool (never on
            // the caller's thread), started at the next `flush`.
            match self.shared.pool() {
                Some(p) => p.push(req),
                None => st
                    .ready
                    .push(Completion::new(req.user, -i64::from(libc::EAGAIN))),
            }
            return;
        }
        let taken = st.taken;
        if !positional {
            st.queue.push_back((req, true));
            return;
        }
        // A buffered read made while nothing waits to be submitted or returned is tried on
        // the spot first (see `classify::read_cached`; the same rule as `io_uring`'s).
        // Not where this context sends no NOWAIT reads (turned off, or refused).
        let now = self.shared.read_now
            && st.nowait
            && !st.nowait_refused[0]
            && st.queue.is_empty()
            && st.ready.is_empty();
        if let Some((fd, t, notify)) = st.checked {
            if fd == req.fd && t == taken && !now && !copies_long(&req) {
                st.queue.push_back((req, notify));
                return;
            }
        }
        // The check is a system call: it runs without the lock (fstat can be slow on network
        // filesystems) and its result is remembered for the next requests on this descriptor.
        drop(st);
        // A refusal (EOPNOTSUPP) needs no memory here: the NOWAIT submission that follows gets
        // it too and sets `nowait_refused`.
        let done = now.then(|| read_cached(&req));
        let verdict = match done {
            // Decided: the read's own result.
            Some(Attempt::Done(n)) => Err(n),
            _ => classify(&req),
        };
        let mut st = lock(&self.shared.state);
        match verdict {
            Err(r) => st.ready.push(Completion::new(req.user, r)),
            Ok(_) if st.closed => st.ready.push(Completion::new(req.user, res::CLOSED)),
            Ok(Route::Pool) => match self.shared.pool() {
                Some(p) => p.push(req),
                None => st
                    .ready
                    .push(Completion::new(req.user, -i64::from(libc::EAGAIN))),
            },
            Ok(Route::Kernel(notify)) => {
                // Valid while nothing leaves the queue, so while this request is still queued
                // (see `State::checked`); stale at once if something left it during the check.
                st.checked = Some((req.fd, taken, notify));
                st.queue.push_back((req, notify));
            }
        }
    }

    /// Submits what is queued and returns every completion already available, reaped on this
    /// thread. With a callback mailbox the rest arrive through the mailbox; loop-driven, this
    /// also takes what waits in the mailbox.
    fn flush(&self) -> Vec<Completion> {
        // Loop-driven: reset the signal before looking at the ring and the mailbox, so that
        // anything finishing after this point signals again.
        self.shared.mailbox.clear_signal();
        let mut out = self.submit_and_reap();
        // Path ops pushed since the last flush go to the pool's workers.
        self.shared.start_handed_off(&mut out);
        out
    }

    /// What the consumer calls when notified, after resetting the mailbox's eventfd (the
    /// binding's event-loop callback does): loop-driven, submit, reap the ring and take the
    /// mailbox; otherwise the mailbox's contents.
    fn collect(&self) -> Vec<Completion> {
        if self.shared.loop_driven {
            self.submit_and_reap()
        } else {
            self.shared.mailbox.take()
        }
    }

    /// Withdraws request `user`: a queued one is removed and reported as
    /// [`res::CANCELLED`] (returned here); an in-flight one gets `io_cancel`, which only POLL
    /// requests honour (its completion then arrives as usual). Returns whether it was queued.
    fn cancel(&self, user: u64) -> Option<Completion> {
        let mut st = lock(&self.shared.state);
        if let Some(i) = st.queue.iter().position(|(r, _)| r.user == user) {
            st.queue.remove(i);
            st.taken += 1;
            st.relays.remove(&user);
            return Some(Completion::new(user, res::CANCELLED));
        }
        let key = st
            .inflight
            .iter()
            .find(|(_, s)| s.user == user)
            .map(|(k, _)| k);
        if let Some(key) = key {
            // Errors (EINVAL for regular files) mean the request just runs to completion.
            // SAFETY: the iocb is in flight, at the address it was submitted at, in a table
            // that outlives the context; io_cancel only reads it.
            let _ = unsafe { sys::io_cancel(self.shared.ctx, st.iocbs.ptr(key)) };
            return None;
        }
        // Handed to the pool (under this lock, so not missed): withdrawn if not started.
        self.shared.started_pool().and_then(|p| p.cancel(user))
    }

    /// Starts closing: refuses new requests, fails queued ones with [`res::CLOSED`] (returned),
    /// and cancels what the kernel can. In-flight requests still complete through the mailbox.
    /// Returns the completions and how many requests remain in the kernel.
    fn close(&self) -> (Vec<Completion>, usize) {
        let _g = lock(&self.shared.submit_lock);
        let mut st = lock(&self.shared.state);
        st.closed = true;
        let mut out = std::mem::take(&mut st.ready);
        let queued: Vec<u64> = st.queue.drain(..).map(|(r, _)| r.user).collect();
        for user in queued {
            st.relays.remove(&user);
            out.push(Completion::new(user, res::CLOSED));
        }
        let keys: Vec<u64> = st.inflight.iter().map(|(k, _)| k).collect();
        for key in keys {
            // SAFETY: as in `cancel`: an in-flight iocb at its submitted address.
            let _ = unsafe { sys::io_cancel(self.shared.ctx, st.iocbs.ptr(key)) };
        }
        let mut remaining = st.inflight.len();
        // Requests handed to the pool and not started fail like queued ones; running ones
        // complete through the mailbox. Kernel requests handed over from now on fail too.
        if let Some(p) = self.shared.started_pool() {
            let (closed, running) = p.close();
            out.extend(closed);
            remaining += running;
        }
        (out, remaining)
    }

    /// Requests queued, in the kernel, or handed to the pool.
    fn outstanding(&self) -> usize {
        let st = lock(&self.shared.state);
        let pooled = self.shared.started_pool().map_or(0, Pool::outstanding);
        st.queue.len() + st.inflight.len() + st.ready.len() + pooled
    }
}

fn reaper_loop(s: &Shared) {
    let efd = s.efd.as_raw_fd();
    let mut out = Vec::new();
    loop {
        if sys::eventfd_read(efd).is_err() || s.stopping.load(Ordering::Acquire) {
            return;
        }
        // Reap, then refill the slots that freed up (here or in an inline reap). Buffered
        // requests complete inside io_submit, so reap again after every round that submitted.
        // Submitting does not hold the reap lock: the caller's thread may reap meanwhile.
        loop {
            {
                let _reaping = lock(&s.reap_lock);
                s.reap(&mut out);
                if !out.is_empty() {
                    s.mailbox.push(out.drain(..));
                }
            }
            if s.pump(&mut out, true) == 0 {
                break;
            }
        }
        if !out.is_empty() {
            s.mailbox.push(out.drain(..));
        }
    }
}

/// Most contexts waiting for the background destroyer ([`destroyer`]); a drop beyond it
/// waits for the destroyer's current batch (one grace period, not one per context). Each
/// waiting context still holds its eventfds and its share of the system-wide `aio-max-nr`,
/// so a program that drops contexts faster than they are destroyed is slowed down instead of
/// exhausting either.
const MAX_DESTROYING: usize = 128;
/// Contexts handed to [`destroyer`] and not destroyed yet, and its signal when a batch is done.
static DESTROYING: (Mutex<usize>, std::sync::Condvar) = (Mutex::new(0), std::sync::Condvar::new());

/// Counts one more context for [`destroyer`], waiting (at most about 5 s, should the thread
/// be stuck) while [`MAX_DESTROYING`] wait already. False if it still has no room.
fn reserve_destroy() -> bool {
    let (count, done) = &DESTROYING;
    let mut n = lock(count);
    for _ in 0..50 {
        if *n < MAX_DESTROYING {
            *n += 1;
            return true;
        }
        n = done
            .wait_timeout(n, std::time::Duration::from_millis(100))
            .map_or_else(|e| e.into_inner().0, |(g, _)| g);
    }
    false
}

/// The destroyer finished `k` contexts (or a reserved one was not handed over).
fn release_destroy(k: usize) {
    let (count, done) = &DESTROYING;
    *lock(count) -= k;
    done.notify_all();
}

/// Where idle contexts are destroyed: one background thread (started on first use).
/// `io_destroy` waits for RCU grace periods even with nothing in flight, 35 ms each on the
/// development VM: on the dropping thread (the JS thread, when a context is garbage collected
/// or torn down at exit) 100 dropped contexts stalled the event loop for 3.4 s. Concurrent
/// calls share the grace periods, so the thread destroys all that wait at once, each on a
/// thread of its own. `None` if the thread cannot be started (the drop then destroys in place).
fn destroyer() -> Option<&'static Mutex<std::sync::mpsc::Sender<Arc<Shared>>>> {
    static TX: OnceLock<Option<Mutex<std::sync::mpsc::Sender<Arc<Shared>>>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Arc<Shared>>();
        std::thread::Builder::new()
            .name("kaio-aio-destroy".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let batch: Vec<Arc<Shared>> = std::iter::once(first)
                        .chain(rx.try_iter().take(MAX_DESTROYING))
                        .collect();
                    std::thread::scope(|scope| {
                        let (here, rest) = batch.split_first().expect("one at least");
                        for shared in rest {
                            let spawned = std::thread::Builder::new()
                                .stack_size(64 * 1024)
                                .spawn_scoped(scope, || destroy(shared));
                            if spawned.is_err() {
                                destroy(shared);
                            }
                        }
                        destroy(here);
                    });
                    release_destroy(batch.len());
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    })
    .as_ref()
}

/// `io_destroy` of a context handed to [`destroyer`].
fn destroy(shared: &Shared) {
    // SAFETY: handed over by `Drop` with nothing in flight and nothing left to submit;
    // `shared` (iocb table included) lives until the destroyer drops it, after this returns.
    let _ = unsafe { sys::io_destroy(shared.ctx) };
}

impl Drop for AioContext {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        let _ = sys::eventfd_write(self.shared.efd.as_raw_fd(), 1);
        if let Some(h) = self.reaper.take() {
            let _ = h.join();
        }
        // Asked to, and with nothing in the kernel (so nothing moves to the pool any more):
        // drop the pool here (it joins its workers, waiting for any running transfer); no
        // caller memory is at stake in the kernel context, which goes to the background thread.
        if self.shared.background_destroy.load(Ordering::Relaxed)
            && lock(&self.shared.state).inflight.is_empty()
        {
            // With the completion thread joined this is the only reference to `shared`.
            if let Some(shared) = Arc::get_mut(&mut self.shared) {
                drop(shared.pool.take());
            }
            if let Some(tx) = destroyer() {
                if reserve_destroy() {
                    if lock(tx).send(self.shared.clone()).is_ok() {
                        return;
                    }
                    release_destroy(1);
                }
            }
        }
        // SAFETY: the completion thread is gone and nothing else submits; io_destroy waits
        // for every in-flight request, after which no caller memory is referenced.
        let _ = unsafe { sys::io_destroy(self.shared.ctx) };
        // Nothing hands requests to the pool any more: dropping it withdraws what has not
        // started and joins the workers, so no caller memory is used after this returns.
        // With the completion thread joined this is the only reference to `shared`.
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            drop(shared.pool.take());
        }
    }
}
