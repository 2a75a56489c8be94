//! The `RWF_NOWAIT` hand-off: which buffered requests kaio sends with `RWF_NOWAIT`, how a
//! completion tells that the attempt did not finish the request, and the context's own pool
//! that runs such a request again, blocking, off the caller's thread (see the module docs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use super::{relay, submit::decode, Shared, Slot, State};
use crate::engine::Engine;
use crate::pool::{self, Pool};
use crate::request::{res, Completion, Op, Request};
use crate::sys::{self, Iocb};

/// Workers of the pool that re-runs buffered requests whose `RWF_NOWAIT` attempt would have
/// blocked (page-cache misses). Started on the first such request, so contexts that only
/// ever hit the cache (or do `O_DIRECT`) never start a thread. A miss waits on the device
/// (~100-400 us here), so the workers bound the device queue depth of cold buffered reads:
/// 8 matches the thread backend's default and the device's parallelism here (see
/// `benchmark/RESULTS.md`, "`RWF_NOWAIT`"), while an idle worker costs only its 256 KiB stack.
pub const NOWAIT_POOL_SIZE: u32 = 8;

/// The default of [`AioContext::set_nowait`]: on unless `KAIO_NOWAIT=0` (read once).
pub(super) fn nowait_default() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("KAIO_NOWAIT").is_none_or(|v| v != "0"))
}

/// Whether kaio adds `RWF_NOWAIT` to `req`, a buffered read or write of a regular file or
/// block device. Not when the caller asked for NOWAIT (they get EAGAIN themselves), for
/// flags kaio does not know (the kernel's EOPNOTSUPP is theirs), for appends (a re-run on the
/// pool could reorder them) or synchronous writes (they wait for the device anyway), nor
/// once this context saw the kind refused (see `State::nowait_refused`).
pub(super) fn nowait_allowed(st: &State, req: &Request) -> bool {
    let write = match req.op {
        Op::Read { .. } | Op::Readv { .. } => false,
        Op::Write { .. } | Op::Writev { .. } => true,
        _ => return false,
    };
    let mut conflicts = sys::RWF_NOWAIT | sys::RWF_APPEND;
    if write {
        conflicts |= sys::RWF_DSYNC | sys::RWF_SYNC;
    }
    st.nowait
        && !st.nowait_refused[usize::from(write)]
        && req.rw_flags & !sys::RWF_SUPPORTED == 0
        && req.rw_flags & conflicts == 0
        && !(write && sys::is_append(req.fd))
}

/// Whether a kaio-added `RWF_NOWAIT` attempt that ended with `res` left the request
/// unfinished, so it must run again without NOWAIT: EAGAIN (it would have blocked),
/// EOPNOTSUPP (the file cannot honour NOWAIT), or a read shorter than asked that did not stop
/// at the end of the file (only a cached prefix was read; a short write stands, as pwrite's).
fn nowait_unfinished(iocb: &Iocb, slot: &Slot, res: i64) -> bool {
    if res == -i64::from(libc::EAGAIN) || res == -i64::from(libc::EOPNOTSUPP) {
        return true;
    }
    let (len, read) = match iocb.aio_lio_opcode {
        sys::IOCB_CMD_PREAD => (iocb.aio_nbytes, true),
        sys::IOCB_CMD_PREADV => (
            slot.iov
                .as_deref()
                .map_or(0, |v| v.iter().map(|i| i.iov_len as u64).sum()),
            true,
        ),
        _ => return false,
    };
    if !read || res < 0 || res as u64 >= len {
        return false;
    }
    // Short: the end of the file, or a page that was not cached (cannot tell: run again).
    let end = (iocb.aio_offset as u64).saturating_add(res as u64);
    !matches!(sys::file_size(iocb.aio_fildes as i32), Ok(size) if end >= size)
}

impl Shared {
    /// Takes request `key` out of the kernel's hands with result `res`: its completion goes
    /// to `out`, unless kaio's own `RWF_NOWAIT` attempt left it unfinished (see
    /// `nowait_unfinished`): then it is handed to the pool, without NOWAIT. A stale key
    /// (already settled) is dropped. Called with the state lock held, so that the request is
    /// in flight or in the pool at every moment (`cancel`, `outstanding`).
    pub(super) fn settle(
        &self,
        st: &mut State,
        key: u64,
        res: i64,
        res2: i64,
        out: &mut Vec<Completion>,
    ) {
        // The request's event was reaped, or io_submit refused it and returned.
        let Some((slot, mut iocb)) = st.release(key) else {
            return;
        };
        if iocb.aio_lio_opcode == sys::IOCB_CMD_POLL {
            let user = slot.user;
            if let Some(res) = relay::poll_result(st, &iocb, slot, res) {
                out.push(Completion { user, res, res2 });
            }
            return;
        }
        if !slot.nowait || !nowait_unfinished(&iocb, &slot, res) {
            out.push(Completion {
                user: slot.user,
                res,
                res2,
            });
            return;
        }
        if res == -i64::from(libc::EOPNOTSUPP) {
            let write = matches!(
                iocb.aio_lio_opcode,
                sys::IOCB_CMD_PWRITE | sys::IOCB_CMD_PWRITEV
            );
            st.nowait_refused[usize::from(write)] = true;
        }
        iocb.aio_rw_flags &= !sys::RWF_NOWAIT;
        let req = decode(&iocb, slot);
        self.handed_off.fetch_add(1, Ordering::Relaxed);
        if st.closed {
            out.push(Completion::new(req.user, res::CLOSED));
            return;
        }
        if let Some(p) = self.pool() {
            p.push(req);
        } else {
            // No pool threads: run it here, blocking, as it would have without NOWAIT.
            let never = AtomicBool::new(false);
            out.push(pool::execute(&req, &never, &never));
        }
    }

    /// Hands what [`Shared::settle`] pushed to the pool to its workers (one wake-up per
    /// batch); completions the pool decided at once (after close) go to `out`.
    pub(super) fn start_handed_off(&self, out: &mut Vec<Completion>) {
        if let Some(p) = self.started_pool() {
            out.extend(p.flush());
        }
    }

    /// The pool, started on first use with [`NOWAIT_POOL_SIZE`] workers (also the one path
    /// ops run on).
    pub(super) fn pool(&self) -> Option<&Pool> {
        self.pool
            .get_or_init(|| Pool::new(NOWAIT_POOL_SIZE, self.mailbox.clone()).ok())
            .as_ref()
    }

    /// The pool if it was started.
    pub(super) fn started_pool(&self) -> Option<&Pool> {
        self.pool.get().and_then(Option::as_ref)
    }
}
