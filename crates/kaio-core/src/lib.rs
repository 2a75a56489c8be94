//! kaio-core: file I/O engines for kaio with no Node.js dependency (the napi binding,
//! `kaio-node`, only converts). Three engines are peers behind one interface, [`Engine`]:
//! kernel AIO (`io_submit`/`io_getevents` with eventfd notification), `io_uring`, and a
//! thread pool, the fallback where neither kernel engine works. [`Backend`] is the enum the
//! binding holds: an enum whose methods forward to the engine inside through a `match`.
//!
//! # Layout
//! - [`engine`]: the [`Engine`] trait (push, flush, collect, cancel, close, outstanding).
//! - [`aio`] (Linux): kernel AIO. The context, `submit.rs` (iocbs, `io_submit` batches,
//!   reaps), `nowait.rs` (the `RWF_NOWAIT` attempt and the hand-off to the context's pool),
//!   `probe.rs` (whether it works here, and why not).
//! - [`uring`] (Linux): `io_uring` on the `io-uring` crate. The ring, `sqe.rs` (SQE
//!   builders), `probe.rs`.
//! - [`pool`]: the thread pool. The queue and workers, `run.rs` (the blocking call each
//!   request makes), `probe.rs` (always available).
//! - Requests are positional transfers (read/write, vectored), syncs, polls, and path
//!   (metadata) ops: open, close, statx, unlink, rename, mkdir, symlink, link, ftruncate,
//!   fallocate, fadvise, with owned paths ([`Op::is_metadata`]). `io_uring` has opcodes for them; kernel AIO does
//!   not, so its context sends them to its own pool; the thread pool makes the syscalls.
//! - Shared by the engines: [`request`] (requests, completions, result codes), [`mailbox`]
//!   (the completion path to the consumer), `classify` (the descriptor check both kernel
//!   engines run before a positional request), [`arena`] (the slot table whose keys travel
//!   as the kernel's user data), [`mem`] (aligned and huge-page buffers), [`probe`] (the
//!   probe answer's shape and its helpers).
//! - [`sys`]: the only module that makes raw system calls (ABI structs and one-line
//!   wrappers); everything above goes through it.

#[cfg(target_os = "linux")]
pub mod aio;
pub mod arena;
#[cfg(target_os = "linux")]
mod classify;
pub mod engine;
pub mod mailbox;
pub mod mem;
pub mod pool;
pub mod probe;
pub mod request;
pub mod sys;
#[cfg(target_os = "linux")]
pub mod uring;

use std::sync::Arc;

pub use engine::Engine;
pub use mailbox::Mailbox;
pub use request::{res, Completion, Op, Request};

/// Which engine serves a context.
pub enum Backend {
    #[cfg(target_os = "linux")]
    Linux(aio::AioContext),
    Thread(pool::Pool),
    #[cfg(target_os = "linux")]
    Uring(uring::UringContext),
}

impl Backend {
    /// A kernel AIO context holding up to `capacity` requests in the kernel.
    #[cfg(target_os = "linux")]
    pub fn linux(capacity: u32, mailbox: Arc<Mailbox>) -> std::io::Result<Self> {
        aio::AioContext::new(capacity, mailbox).map(Backend::Linux)
    }

    /// An `io_uring` ring of `capacity` entries (see [`uring`] for the thread rules).
    #[cfg(target_os = "linux")]
    pub fn uring(
        capacity: u32,
        mailbox: Arc<Mailbox>,
        opts: uring::UringOptions,
    ) -> std::io::Result<Self> {
        uring::UringContext::new(capacity, mailbox, opts).map(Backend::Uring)
    }

    /// A pool of `size` worker threads.
    pub fn thread(size: u32, mailbox: Arc<Mailbox>) -> std::io::Result<Self> {
        pool::Pool::new(size, mailbox).map(Backend::Thread)
    }
}

/// Runs `$body` with `$e` bound to the engine inside `$backend`: a `match`, so every call is a
/// direct call to that engine's [`Engine`] method (no vtable on the per-request path).
macro_rules! each_engine {
    ($backend:expr, $e:ident => $body:expr) => {
        match $backend {
            #[cfg(target_os = "linux")]
            Backend::Linux($e) => $body,
            Backend::Thread($e) => $body,
            #[cfg(target_os = "linux")]
            Backend::Uring($e) => $body,
        }
    };
}

/// The calls the binding makes, forwarded to the engine inside (see [`Engine`] for each).
impl Backend {
    /// [`Engine::push`].
    pub fn push(&self, req: Request) {
        each_engine!(self, e => e.push(req));
    }

    /// [`Engine::flush`].
    pub fn flush(&self) -> Vec<Completion> {
        each_engine!(self, e => e.flush())
    }

    /// [`Engine::collect`].
    pub fn collect(&self) -> Vec<Completion> {
        each_engine!(self, e => e.collect())
    }

    /// [`Engine::cancel`].
    pub fn cancel(&self, user: u64) -> Option<Completion> {
        each_engine!(self, e => e.cancel(user))
    }

    /// [`Engine::close`].
    pub fn close(&self) -> (Vec<Completion>, usize) {
        each_engine!(self, e => e.close())
    }

    /// [`Engine::outstanding`].
    #[must_use]
    pub fn outstanding(&self) -> usize {
        each_engine!(self, e => e.outstanding())
    }

    /// Lets a drop that finds nothing in flight leave its slow part to the background: the
    /// kernel context's teardown ([`aio::AioContext::destroy_in_background`]) or the idle
    /// workers' exit ([`pool::Pool::detach_when_idle`]; `io_uring` tears down quickly). For
    /// drops nobody waits for: garbage collection, env teardown.
    pub fn destroy_in_background(&self) {
        match self {
            #[cfg(target_os = "linux")]
            Backend::Linux(c) => c.destroy_in_background(),
            Backend::Thread(p) => p.detach_when_idle(),
            #[cfg(target_os = "linux")]
            Backend::Uring(_) => {}
        }
    }
}
