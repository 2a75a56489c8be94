//! Where finished requests wait for the JavaScript thread.
//!
//! Producers (the completion thread, pool workers) append; the first append into an empty
//! mailbox calls `notify` once, and the consumer takes everything in one go. So one wake-up
//! carries a whole batch, however many completions arrive before the consumer runs.

use std::sync::Mutex;

use crate::request::Completion;

/// Called (from any thread) when the mailbox goes from empty to non-empty.
pub type Notify = Box<dyn Fn() + Send + Sync>;

pub struct Mailbox {
    items: Mutex<Vec<Completion>>,
    notify: Notify,
}

impl Mailbox {
    #[must_use]
    pub fn new(notify: Notify) -> Self {
        Self {
            items: Mutex::new(Vec::new()),
            notify,
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
            (self.notify)();
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
}
