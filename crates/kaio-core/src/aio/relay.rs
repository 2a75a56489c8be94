//! Polls that kernel AIO refuses, relayed through an epoll instance.
//!
//! `IOCB_CMD_POLL` answers EINVAL for a descriptor that is not ready yet and waits on more
//! than one wait queue: a pipe or FIFO opened read-write (pipes wait on two since Linux 5.5),
//! some character devices. An epoll instance waits on one queue whatever it watches, so such
//! a poll is submitted again as a poll of an epoll instance that watches the descriptor for
//! the same events. When that completes, one `epoll_wait` with no timeout reads the
//! descriptor's own events (those asked for, plus POLLERR and POLLHUP, as `poll(2)` reports
//! them); if they are gone by then (another reader took the data), the relay is submitted
//! again. A descriptor that epoll refuses too (a regular file or a directory: EPERM) keeps the
//! kernel's EINVAL. A relay is an ordinary poll iocb: no thread waits for it, and `cancel`
//! and `close` reach it with `io_cancel` as any poll.

use std::os::fd::{AsRawFd, OwnedFd};

use super::{submit::decode, Slot, State};
use crate::request::Op;
use crate::sys::{self, Iocb};

/// The epoll instance a relayed poll waits on (closed when the poll completes).
pub(super) struct Relay {
    epoll: OwnedFd,
}

/// The result of the poll iocb `iocb` (request `slot`), completed by the kernel with `res`,
/// or `None` when the request was queued again (relayed now, or relayed and its events gone
/// again). Called with the state lock held, from `Shared::settle`.
pub(super) fn poll_result(st: &mut State, iocb: &Iocb, slot: Slot, res: i64) -> Option<i64> {
    let user = slot.user;
    if let Some(relay) = st.relays.get(&user) {
        // 0: cancelled (close, an abort); negative: the epoll instance's own error.
        let result = if res > 0 {
            match sys::epoll_ready(relay.epoll.as_raw_fd()) {
                Ok(0) if !st.closed => {
                    requeue(st, iocb, slot, relay.epoll.as_raw_fd());
                    return None;
                }
                Ok(events) => i64::from(events & 0xffff),
                Err(errno) => -i64::from(errno),
            }
        } else {
            res
        };
        st.relays.remove(&user);
        return Some(result);
    }
    if res != -i64::from(libc::EINVAL) || st.closed {
        return Some(res);
    }
    match sys::epoll_watching(iocb.aio_fildes as i32, iocb.aio_buf as u32 & 0xffff) {
        Ok(epoll) => {
            requeue(st, iocb, slot, epoll.as_raw_fd());
            st.relays.insert(user, Relay { epoll });
            None
        }
        // Not something epoll can watch either: the kernel's answer stands.
        Err(_) => Some(res),
    }
}

/// Queues request `slot` again as a poll for POLLIN of the epoll instance `epoll`.
fn requeue(st: &mut State, iocb: &Iocb, slot: Slot, epoll: i32) {
    let mut req = decode(iocb, slot);
    req.fd = epoll;
    req.op = Op::Poll {
        events: libc::POLLIN as u32,
    };
    st.queue.push_back((req, true));
}
