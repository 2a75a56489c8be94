//! The iocb table: memory the kernel shares with this engine.
//!
//! One iocb per arena slot, at an address that never changes: `io_submit` takes iocbs by
//! address, `io_cancel` names one by the address it was submitted at, and the kernel writes
//! into the table itself: each `io_submit` stores `aio_key` into every iocb it takes (and
//! `io_cancel` reads it back). A Rust reference to an iocb, or to the table as a slice of
//! plain iocbs, would promise that nobody else writes it while the reference lives; an
//! `io_submit` running on another thread breaks that promise.
//!
//! # Invariant (enforced here)
//! - The table is a `Box<[UnsafeCell<Iocb>]>`, reached only through [`IocbTable::ptr`] (a raw
//!   pointer, handed to `io_submit`/`io_cancel`) and the two accesses below, which copy a
//!   whole iocb in or out through that pointer. No `&Iocb` or `&mut Iocb` into the table is
//!   ever made.
//! - [`IocbTable::store`] fills a slot's iocb before the request is submitted; only a free
//!   slot just taken from the arena is stored to, and the kernel writes an iocb only inside
//!   an `io_submit` that names it.
//! - [`IocbTable::load`] copies an iocb once the kernel is done writing it: its event was
//!   reaped (the `aio_key` store happens before the request starts, so before its event), or
//!   the `io_submit` that refused it returned.
//! - Both run under the context's state lock, which owns the table, so Rust never races
//!   Rust on it; the table is freed only after `io_destroy` (see the context's `Drop`).

use std::cell::UnsafeCell;

use crate::sys::Iocb;

/// One kernel-shared iocb per arena slot (see the module docs).
pub(super) struct IocbTable(Box<[UnsafeCell<Iocb>]>);

/// The slot index of an arena key (its low 32 bits).
fn index(key: u64) -> usize {
    (key & 0xffff_ffff) as usize
}

impl IocbTable {
    /// `capacity` zeroed iocbs.
    pub(super) fn new(capacity: u32) -> Self {
        Self(
            (0..capacity)
                .map(|_| UnsafeCell::new(Iocb::default()))
                .collect(),
        )
    }

    /// The address of the iocb for arena key `key`: stable for the table's life, and the
    /// only way to reach it.
    pub(super) fn ptr(&self, key: u64) -> *mut Iocb {
        self.0[index(key)].get()
    }

    /// Writes the iocb for `key` (before its request is submitted).
    ///
    /// # Safety
    /// `key`'s slot must be free of the kernel: not in flight (no `io_submit` or `io_cancel`
    /// names it until this returns). The caller holds the state lock.
    pub(super) unsafe fn store(&self, key: u64, iocb: Iocb) {
        // SAFETY: the pointer is valid and aligned (it points into the boxed table); the
        // caller promises nothing else, kernel included, uses this iocb meanwhile.
        unsafe { self.ptr(key).write(iocb) };
    }

    /// Copies the iocb for `key`.
    ///
    /// # Safety
    /// The kernel must be done writing it: its event was reaped, or the `io_submit` that
    /// refused it returned. The caller holds the state lock.
    pub(super) unsafe fn load(&self, key: u64) -> Iocb {
        // SAFETY: the pointer is valid and aligned; the caller promises no write races this
        // read (the kernel's `aio_key` store is over, Rust's need the lock we hold).
        unsafe { self.ptr(key).read() }
    }
}
