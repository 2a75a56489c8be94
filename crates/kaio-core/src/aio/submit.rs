//! Submission and reaping: queued requests become iocbs in free slots and reach the kernel in
//! `io_submit` batches; `io_getevents` takes the events back and hands each to
//! [`Shared::settle`](super::Shared) (see the module docs for who calls these, and when).

use super::{lock, nowait::nowait_allowed, Shared, Slot};
use crate::request::{next_to_start, poll_limit, Completion, Op, Request};
use crate::sys::{self, IoEvent, Iocb};

/// Most iocbs handed to one `io_submit`.
const MAX_BATCH: usize = 256;
/// Most events taken by one `io_getevents`.
const REAP_BATCH: usize = 256;

impl Shared {
    /// Moves queued requests into free slots and submits them, in batches, until the queue is
    /// empty or the slots are full; returns how many the kernel took. Requests the kernel refuses outright become completions
    /// in `out`; a full ring (EAGAIN) leaves the rest queued, in order.
    ///
    /// `handed_over`: the completion thread submits, so every completion signals (quiet
    /// ones would reach the caller only after the whole round; signalled, the caller starts
    /// settling while the rest are still being submitted: page cache 4k d128 350k -> 660k).
    pub(super) fn pump(&self, out: &mut Vec<Completion>, handed_over: bool) -> usize {
        let _g = lock(&self.submit_lock);
        let efd = self.resfd;
        let mut submitted = 0;
        loop {
            let mut ptrs: Vec<*mut Iocb> = Vec::new();
            let mut keys: Vec<u64> = Vec::new();
            {
                let mut st = lock(&self.state);
                if st.closed {
                    return submitted;
                }
                let limit = poll_limit(st.inflight.capacity());
                while ptrs.len() < MAX_BATCH && !st.inflight.is_full() {
                    let polls = st.polls;
                    let Some((req, notify)) =
                        next_to_start(&mut st.queue, || polls >= limit, |(r, _)| r)
                    else {
                        break;
                    };
                    let poll = req.op.is_poll();
                    st.polls += usize::from(poll);
                    st.taken += 1;
                    let buffered = !notify;
                    let nowait = buffered && nowait_allowed(&st, &req);
                    let notify = notify || handed_over || !st.quiet_ok;
                    let (mut iocb, iov) = encode(&req, notify.then_some(efd));
                    if nowait {
                        iocb.aio_rw_flags |= sys::RWF_NOWAIT;
                    }
                    st.quiet += usize::from(!notify);
                    let Ok(key) = st.inflight.insert(Slot {
                        user: req.user,
                        iov,
                        buffered,
                        nowait,
                        poll,
                    }) else {
                        unreachable!("checked is_full above")
                    };
                    let iocb = Iocb {
                        aio_data: key,
                        ..iocb
                    };
                    // SAFETY: `key`'s slot was free until the insert above, under the lock
                    // we hold: no io_submit or io_cancel names its iocb yet.
                    unsafe { st.iocbs.store(key, iocb) };
                    ptrs.push(st.iocbs.ptr(key));
                    keys.push(key);
                }
            }
            if ptrs.is_empty() {
                return submitted;
            }
            let mut done = 0;
            while done < ptrs.len() {
                // SAFETY: each iocb points at caller memory that the Request contract keeps
                // valid until its completion; iovec arrays live in the arena slot. The
                // pointers are into the iocb table (stable addresses, no references: the
                // kernel stores `aio_key` in each during this call; see `iocbs.rs`).
                match unsafe { sys::io_submit(self.ctx, &mut ptrs[done..]) } {
                    Ok(n) if n > 0 => {
                        done += n;
                        submitted += n;
                    }
                    Ok(_) => {
                        self.requeue(&keys[done..], out);
                        return submitted;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                        self.requeue(&keys[done..], out);
                        return submitted;
                    }
                    Err(e) => {
                        // The first remaining iocb was refused: it completes with the errno
                        // (EOPNOTSUPP for a kaio-added NOWAIT: it goes to the pool).
                        let errno = e.raw_os_error().unwrap_or(libc::EIO);
                        let mut st = lock(&self.state);
                        self.settle(&mut st, keys[done], -i64::from(errno), 0, out);
                        self.start_handed_off(out);
                        done += 1;
                    }
                }
            }
        }
    }

    /// Puts refused-for-now iocbs back at the head of the queue (a full ring). If nothing else
    /// is in flight no completion would ever retry them, so they fail with EAGAIN instead.
    fn requeue(&self, keys: &[u64], out: &mut Vec<Completion>) {
        let mut st = lock(&self.state);
        let stuck = st.inflight.len() == keys.len();
        for &key in keys.iter().rev() {
            // The io_submit that refused these has returned: the kernel is done with them.
            let Some((slot, mut iocb)) = st.release(key) else {
                continue;
            };
            if stuck {
                st.relays.remove(&slot.user);
                out.push(Completion::new(slot.user, -i64::from(libc::EAGAIN)));
                continue;
            }
            // Queued as it was pushed: quiet if buffered (`pump` decides signalling and
            // NOWAIT again), without the NOWAIT that kaio added.
            let notify = !slot.buffered;
            if slot.nowait {
                iocb.aio_rw_flags &= !sys::RWF_NOWAIT;
            }
            st.queue.push_front((decode(&iocb, slot), notify));
        }
    }

    /// Takes every event in the ring without blocking; returns how many. If quiet requests
    /// are still in flight afterwards, signals the eventfd so that they are reaped later (see
    /// the module docs).
    pub(super) fn reap(&self, out: &mut Vec<Completion>) -> usize {
        let mut events = [IoEvent::default(); REAP_BATCH];
        let mut total = 0;
        loop {
            let n = sys::io_getevents_nowait(self.ctx, &mut events).unwrap_or(0);
            if n > 0 {
                let mut st = lock(&self.state);
                for ev in &events[..n] {
                    self.settle(&mut st, ev.data, ev.res, ev.res2, out);
                }
                self.start_handed_off(out);
            }
            total += n;
            if n < REAP_BATCH {
                let mut st = lock(&self.state);
                if st.quiet > 0 {
                    st.quiet_ok = false;
                    drop(st);
                    let _ = sys::eventfd_write(self.resfd as i32, 1);
                }
                return total;
            }
        }
    }
}

/// Builds the iocb for `req` (without `aio_data`), plus the iovec array it points to; with
/// `resfd`, its completion signals that eventfd.
pub(super) fn encode(req: &Request, resfd: Option<u32>) -> (Iocb, Option<Box<[libc::iovec]>>) {
    let mut iocb = Iocb {
        aio_fildes: req.fd as u32,
        aio_offset: req.offset,
        aio_rw_flags: req.rw_flags,
        aio_flags: if resfd.is_some() {
            sys::IOCB_FLAG_RESFD
        } else {
            0
        },
        aio_resfd: resfd.unwrap_or(0),
        ..Iocb::default()
    };
    if let Some(p) = req.priority {
        iocb.aio_flags |= sys::IOCB_FLAG_IOPRIO;
        iocb.aio_reqprio = p as i16;
    }
    let mut iov_out = None;
    match &req.op {
        Op::Read { buf, len } => {
            iocb.aio_lio_opcode = sys::IOCB_CMD_PREAD;
            iocb.aio_buf = *buf as u64;
            iocb.aio_nbytes = *len as u64;
        }
        Op::Write { buf, len } => {
            iocb.aio_lio_opcode = sys::IOCB_CMD_PWRITE;
            iocb.aio_buf = *buf as u64;
            iocb.aio_nbytes = *len as u64;
        }
        Op::Readv { iov } | Op::Writev { iov } => {
            iocb.aio_lio_opcode = if matches!(req.op, Op::Readv { .. }) {
                sys::IOCB_CMD_PREADV
            } else {
                sys::IOCB_CMD_PWRITEV
            };
            let copy: Box<[libc::iovec]> = iov.clone();
            iocb.aio_buf = copy.as_ptr() as u64;
            iocb.aio_nbytes = copy.len() as u64;
            iov_out = Some(copy);
        }
        // FSYNC/FDSYNC/POLL need offset, nbytes and rw_flags zero (kernel facts 3 and 4).
        Op::Fsync | Op::Fdsync => {
            iocb.aio_lio_opcode = if matches!(req.op, Op::Fsync) {
                sys::IOCB_CMD_FSYNC
            } else {
                sys::IOCB_CMD_FDSYNC
            };
            iocb.aio_offset = 0;
        }
        Op::Poll { events } => {
            iocb.aio_lio_opcode = sys::IOCB_CMD_POLL;
            iocb.aio_buf = u64::from(*events);
            iocb.aio_offset = 0;
        } // `push` hands path ops to the pool, so none reaches here; were one to, the kernel
        // would refuse the unknown opcode (EINVAL) rather than run something else.
        op => {
            debug_assert!(!op.is_metadata(), "path ops never become iocbs");
            iocb.aio_lio_opcode = u16::MAX;
        }
    }
    (iocb, iov_out)
}

/// Rebuilds a queued request from its iocb (for requeueing after EAGAIN).
pub(super) fn decode(iocb: &Iocb, slot: Slot) -> Request {
    let op = match iocb.aio_lio_opcode {
        sys::IOCB_CMD_PREAD => Op::Read {
            buf: iocb.aio_buf as *mut u8,
            len: iocb.aio_nbytes as usize,
        },
        sys::IOCB_CMD_PWRITE => Op::Write {
            buf: iocb.aio_buf as *const u8,
            len: iocb.aio_nbytes as usize,
        },
        sys::IOCB_CMD_PREADV => Op::Readv {
            iov: slot.iov.unwrap_or_default(),
        },
        sys::IOCB_CMD_PWRITEV => Op::Writev {
            iov: slot.iov.unwrap_or_default(),
        },
        sys::IOCB_CMD_FSYNC => Op::Fsync,
        sys::IOCB_CMD_FDSYNC => Op::Fdsync,
        _ => Op::Poll {
            events: iocb.aio_buf as u32,
        },
    };
    Request {
        user: slot.user,
        fd: iocb.aio_fildes as i32,
        offset: iocb.aio_offset,
        op,
        rw_flags: iocb.aio_rw_flags,
        priority: (iocb.aio_flags & sys::IOCB_FLAG_IOPRIO != 0).then_some(iocb.aio_reqprio as u16),
    }
}
