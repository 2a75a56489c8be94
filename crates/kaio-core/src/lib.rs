//! kaio-core: Linux kernel AIO (`io_submit`/`io_getevents` with eventfd notification), `io_uring`
//! ([`uring`]) and a thread-pool fallback behind one request/completion interface. No Node.js dependency: the
//! napi binding (`kaio-node`) only converts.

#[cfg(target_os = "linux")]
pub mod aio;
pub mod arena;
#[cfg(target_os = "linux")]
mod classify;
pub mod mailbox;
pub mod mem;
pub mod pool;
pub mod probe;
pub mod request;
pub mod sys;
#[cfg(target_os = "linux")]
pub mod uring;

use std::sync::Arc;

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

    /// Queues a request (see the `push` of each engine).
    pub fn push(&self, req: Request) {
        match self {
            #[cfg(target_os = "linux")]
            Backend::Linux(c) => c.push(req),
            Backend::Thread(p) => p.push(req),
            #[cfg(target_os = "linux")]
            Backend::Uring(u) => u.push(req),
        }
    }

    /// Submits queued requests; returns the completions available right away.
    pub fn flush(&self) -> Vec<Completion> {
        match self {
            #[cfg(target_os = "linux")]
            Backend::Linux(c) => c.flush(),
            Backend::Thread(p) => p.flush(),
            #[cfg(target_os = "linux")]
            Backend::Uring(u) => u.flush(),
        }
    }

    /// The completions to deliver when the mailbox has signalled (call after
    /// [`Mailbox::clear_signal`], which the binding's event-loop callback does).
    pub fn collect(&self) -> Vec<Completion> {
        match self {
            #[cfg(target_os = "linux")]
            Backend::Linux(c) => c.collect(),
            Backend::Thread(p) => p.collect(),
            #[cfg(target_os = "linux")]
            Backend::Uring(u) => u.collect(),
        }
    }

    /// Withdraws a request; returns its completion if it never started.
    pub fn cancel(&self, user: u64) -> Option<Completion> {
        match self {
            #[cfg(target_os = "linux")]
            Backend::Linux(c) => c.cancel(user),
            Backend::Thread(p) => p.cancel(user),
            #[cfg(target_os = "linux")]
            Backend::Uring(u) => u.cancel(user),
        }
    }

    /// Starts closing; returns the completions of requests that never started, and how many
    /// are still running (their completions arrive through the mailbox).
    pub fn close(&self) -> (Vec<Completion>, usize) {
        match self {
            #[cfg(target_os = "linux")]
            Backend::Linux(c) => c.close(),
            Backend::Thread(p) => p.close(),
            #[cfg(target_os = "linux")]
            Backend::Uring(u) => u.close(),
        }
    }

    /// Requests not yet completed.
    #[must_use]
    pub fn outstanding(&self) -> usize {
        match self {
            #[cfg(target_os = "linux")]
            Backend::Linux(c) => c.outstanding(),
            Backend::Thread(p) => p.outstanding(),
            #[cfg(target_os = "linux")]
            Backend::Uring(u) => u.outstanding(),
        }
    }
}
