//! The one interface every engine implements: kernel AIO ([`crate::aio::AioContext`]),
//! `io_uring` ([`crate::uring::UringContext`]) and the thread pool ([`crate::pool::Pool`]).
//!
//! A request's life through any engine: [`Engine::push`] queues it (or decides it at once:
//! a bad descriptor, a closed engine); [`Engine::flush`], once per event-loop tick, submits
//! what is queued and returns what completed meanwhile; the rest arrive through the engine's
//! [`Mailbox`](crate::Mailbox), and [`Engine::collect`] takes them when it signals. Each
//! request completes exactly once, from exactly one of `push`'s later `flush`, `collect`,
//! `cancel`, `close`, or the mailbox.
//!
//! # Threads
//! Every engine is `Send + Sync`: its state sits behind mutexes, its worker or completion
//! threads share it. The `io_uring` engine adds a rule the type cannot carry: a loop-driven
//! ring (`SINGLE_ISSUER | DEFER_TASKRUN`) must be entered from the thread that made it (see
//! [`crate::uring`]). Breaking it is not a memory error: the kernel refuses `io_uring_enter`
//! from another task (EEXIST), the entries stay queued, and a drop there leaks the ring
//! instead of freeing what the kernel may still write. So the bound stays `Send + Sync`, which
//! a callback-mailbox ring (reaped by its own thread) needs anyway.
//!
//! # Dispatch
//! [`crate::Backend`] is an enum of the three, forwarding each call through a `match`, so the
//! per-request `push` and per-tick `flush` are direct (inlinable) calls, not `dyn Engine`
//! ones; the trait is object safe should a caller want that.

use crate::request::{Completion, Request};

/// What the binding drives, whichever engine serves a context.
pub trait Engine: Send + Sync {
    /// Queues a request; it reaches the kernel or a worker at the next [`flush`](Self::flush)
    /// at the latest. A request decided without the kernel comes out of the next `flush`.
    fn push(&self, req: Request);

    /// Submits queued requests; returns the completions available right away.
    fn flush(&self) -> Vec<Completion>;

    /// The completions to deliver when the mailbox has signalled (call after
    /// [`Mailbox::clear_signal`](crate::Mailbox::clear_signal), which the binding's
    /// event-loop callback does).
    fn collect(&self) -> Vec<Completion>;

    /// Withdraws request `user`; returns its completion if it never started (otherwise its
    /// completion arrives as usual, perhaps early).
    fn cancel(&self, user: u64) -> Option<Completion>;

    /// Starts closing; returns the completions of requests that never started, and how many
    /// are still running (their completions arrive through the mailbox).
    fn close(&self) -> (Vec<Completion>, usize);

    /// Requests not yet completed.
    #[must_use]
    fn outstanding(&self) -> usize;
}
