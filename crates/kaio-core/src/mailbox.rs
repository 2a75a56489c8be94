//! Where finished requests wait for the JavaScript thread.
//!
//! Producers (the completion thread, pool workers) append; the first append into an empty
//! mailbox notifies the consumer once, and the consumer takes everything in one go. So one
//! wake-up carries a whole batch, however many completions arrive before the consumer runs.
//!
//! The consumer is notified through a callback (a napi threadsafe function), or through an
//! eventfd that the consumer's event loop watches ([`Mailbox::with_eventfd`]). With the
//! eventfd, the kernel AIO context also points its completions at that descriptor, so a kernel
//! completion wakes the event loop directly, without a thread in between.

#[cfg(target_os = "linux")]
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use crate::request::Completion;

/// Called (from any thread) when the mailbox goes from empty to non-empty.
pub type Notify = Box<dyn Fn() + Send + Sync>;

enum Signal {
    Callback(Notify),
    #[cfg(target_os = "linux")]
    EventFd(OwnedFd),
}

pub struct Mailbox {
    items: Mutex<Vec<Completion>>,
    signal: Signal,
}

impl Mailbox {
    #[must_use]
    pub fn new(notify: Notify) -> Self {
        Self {
            items: Mutex::new(Vec::new()),
            signal: Signal::Callback(notify),
        }
    }

    /// A mailbox that signals a non-blocking eventfd (see [`Mailbox::eventfd`]).
    #[cfg(target_os = "linux")]
    pub fn with_eventfd() -> std::io::Result<Self> {
        Ok(Self {
            items: Mutex::new(Vec::new()),
            signal: Signal::EventFd(crate::sys::eventfd_nonblocking()?),
        })
    }

    /// The eventfd this mailbox signals, if it was made by [`Mailbox::with_eventfd`]. It
    /// becomes readable when completions are waiting; the consumer calls
    /// [`Mailbox::clear_signal`] before taking them.
    #[cfg(target_os = "linux")]
    #[must_use]
    pub fn eventfd(&self) -> Option<RawFd> {
        match &self.signal {
            Signal::EventFd(fd) => Some(fd.as_raw_fd()),
            Signal::Callback(_) => None,
        }
    }

    /// Resets the eventfd's counter (no-op for a callback mailbox). A consumer clears, then
    /// takes: anything signalled after the clear signals again.
    pub fn clear_signal(&self) {
        #[cfg(target_os = "linux")]
        if let Signal::EventFd(fd) = &self.signal {
            let _ = crate::sys::eventfd_read(fd.as_raw_fd());
        }
    }

    fn notify(&self) {
        match &self.signal {
            Signal::Callback(f) => f(),
            #[cfg(target_os = "linux")]
            Signal::EventFd(fd) => {
                let _ = crate::sys::eventfd_write(fd.as_raw_fd(), 1);
            }
        }
    }

    /// Appends completions; wakes the consumer if it had nothing to do.
    pub fn push(&self, batch: impl IntoIterator<Item = Completion>) {
        let was_empty = {
            let mut items = self
                .items
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let was_empty = items.is_empty();
            items.extend(batch);
            was_empty && !items.is_empty()
        };
        if was_empty {
            self.notify();
        }
    }

    /// Takes every waiting completion.
    pub fn take(&self) -> Vec<Completion> {
        std::mem::take(
            &mut *self
                .items
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn notifies_once_per_batch() {
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        let m = Mailbox::new(Box::new(move || {
            n2.fetch_add(1, Ordering::SeqCst);
        }));
        m.push([Completion::new(1, 0)]);
        m.push([Completion::new(2, 0)]);
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert_eq!(m.take().len(), 2);
        m.push(std::iter::empty());
        assert_eq!(n.load(Ordering::SeqCst), 1, "an empty push wakes nobody");
        m.push([Completion::new(3, 0)]);
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn eventfd_mailbox_signals_until_cleared() {
        let m = Mailbox::with_eventfd().unwrap();
        let fd = m.eventfd().unwrap();
        let readable = || crate::sys::poll_one(fd, libc::POLLIN, 0) == Ok(libc::POLLIN);
        assert!(!readable());
        m.push([Completion::new(1, 0)]);
        assert!(readable());
        m.clear_signal();
        assert!(!readable(), "cleared");
        assert_eq!(m.take().len(), 1);
        m.clear_signal();
        assert!(!readable(), "clearing twice does not block");
    }
}
