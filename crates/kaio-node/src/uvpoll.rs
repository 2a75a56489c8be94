//! Watching the completion eventfd from Node's own event loop (libuv `uv_poll`), so that a
//! kernel completion wakes the JavaScript thread directly: one thread hop, as fio's, instead
//! of two (eventfd -> completion thread -> threadsafe function -> loop).
//!
//! libuv's functions are looked up in the host process at run time (`dlsym`): Node exports
//! them for addons. Where they are missing (a runtime that is not Node), [`LoopWatch::new`]
//! returns `None` and the caller keeps the threadsafe-function path.
//!
//! Busy polling (opt-in, `Context({ busyPoll })`): while requests are outstanding, an active
//! `uv_idle` handle makes libuv poll with a zero timeout, so the loop keeps turning (timers,
//! I/O and JavaScript run as usual) and sees the eventfd the moment it is signalled, instead
//! of sleeping in `epoll_wait`. On a VM whose idle vCPU halts, that sleep and the wake-up
//! after it cost more than the I/O itself at depth 1 (benchmark/RESULTS.md). The spin stops
//! when nothing is outstanding or after the budget passes without a submit or completion.
//!
//! Everything here runs on the JavaScript thread of the environment the watch was made in.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr};
use std::ptr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use napi::sys;

type PollCb = unsafe extern "C" fn(handle: *mut c_void, status: c_int, events: c_int);
type CloseCb = unsafe extern "C" fn(handle: *mut c_void);
type IdleCb = unsafe extern "C" fn(handle: *mut c_void);

/// `UV_IDLE` and `UV_POLL` in libuv's `uv_handle_type`, `UV_READABLE` in `uv_poll_event`
/// (stable ABI).
const UV_IDLE: c_int = 6;
const UV_POLL: c_int = 8;
const UV_READABLE: c_int = 1;

struct Uv {
    /// Bytes of the larger of a poll and an idle handle: both are allocated with this size,
    /// so one close callback frees either.
    handle_size: usize,
    poll_init: unsafe extern "C" fn(*mut c_void, *mut c_void, c_int) -> c_int,
    poll_start: unsafe extern "C" fn(*mut c_void, c_int, PollCb) -> c_int,
    poll_stop: unsafe extern "C" fn(*mut c_void) -> c_int,
    close: unsafe extern "C" fn(*mut c_void, Option<CloseCb>),
    ref_handle: unsafe extern "C" fn(*mut c_void),
    unref_handle: unsafe extern "C" fn(*mut c_void),
    idle_init: unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int,
    idle_start: unsafe extern "C" fn(*mut c_void, IdleCb) -> c_int,
    idle_stop: unsafe extern "C" fn(*mut c_void) -> c_int,
    now: unsafe extern "C" fn(*const c_void) -> u64,
}

/// The function `name` in the global scope, as the function pointer type `F`.
///
/// # Safety
/// `F` must be an `unsafe extern "C" fn` type matching the symbol's C signature.
unsafe fn symbol<F: Copy>(name: &CStr) -> Option<F> {
    const { assert!(std::mem::size_of::<F>() == std::mem::size_of::<*mut c_void>()) };
    // SAFETY: dlsym with a NUL-terminated name in the global scope.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    // SAFETY: a non-null function address read as the (same-sized) fn pointer the caller names.
    (!p.is_null()).then(|| unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) })
}

/// libuv's entry points, or `None` when the host does not export them (or
/// `KAIO_NO_UV_POLL` is set, which tests use to exercise the fallback).
fn uv() -> Option<&'static Uv> {
    static UV: OnceLock<Option<Uv>> = OnceLock::new();
    UV.get_or_init(|| {
        if std::env::var_os("KAIO_NO_UV_POLL").is_some() {
            return None;
        }
        // SAFETY: each symbol is libuv's function of that name, with the C signature declared
        // in uv.h that the transmuted type spells out.
        unsafe {
            let handle_size: unsafe extern "C" fn(c_int) -> usize = symbol(c"uv_handle_size")?;
            Some(Uv {
                handle_size: handle_size(UV_POLL).max(handle_size(UV_IDLE)),
                poll_init: symbol(c"uv_poll_init")?,
                poll_start: symbol(c"uv_poll_start")?,
                poll_stop: symbol(c"uv_poll_stop")?,
                close: symbol(c"uv_close")?,
                ref_handle: symbol(c"uv_ref")?,
                unref_handle: symbol(c"uv_unref")?,
                idle_init: symbol(c"uv_idle_init")?,
                idle_start: symbol(c"uv_idle_start")?,
                idle_stop: symbol(c"uv_idle_stop")?,
                now: symbol(c"uv_now")?,
            })
        }
    })
    .as_ref()
}

/// Whether a [`LoopWatch`] can be made in `env`: the host exports libuv's functions and hands
/// out its event loop. Calls no `uv_*` function (a host may export them as stubs that abort).
pub fn available(env: sys::napi_env) -> bool {
    let mut uv_loop: *mut sys::uv_loop_s = ptr::null_mut();
    // SAFETY: a plain napi call on the JS thread with an out-pointer to a local.
    uv().is_some()
        && unsafe { sys::napi_get_uv_event_loop(env, &raw mut uv_loop) } == sys::Status::napi_ok
        && !uv_loop.is_null()
}

/// What the poll callback needs; `handle->data` points here while the watch is open.
struct Inner {
    env: sys::napi_env,
    callback: sys::napi_ref,
    async_ctx: sys::napi_async_context,
    fd: c_int,
}

/// A `uv_poll` watch on an eventfd that calls a JavaScript function (through
/// `napi_make_callback`, so promise reactions run after it) when the eventfd is readable.
/// Created unreferenced. [`LoopWatch::close`] must be called on the JS thread before the
/// environment's loop closes (the env cleanup hook does it at teardown).
pub struct LoopWatch {
    uv: &'static Uv,
    uv_loop: *const c_void,
    /// Heap memory of `uv.handle_size` bytes (u64 words, so pointer-aligned).
    handle: *mut c_void,
    inner: *mut Inner,
    /// The busy-poll idle handle and its state (`handle->data`), when busy polling is on.
    spin: Option<(*mut c_void, Box<Spin>)>,
}

/// Busy-poll state, read by the idle callback.
struct Spin {
    budget: Duration,
    /// When the idle callback stops the spin (the loop then sleeps in `epoll_wait` again).
    deadline: Cell<Instant>,
    active: Cell<bool>,
}

/// The handle's memory: `uv_handle_size(UV_POLL)` bytes, freed by the close callback.
fn alloc_handle(size: usize) -> *mut c_void {
    let words = size.div_ceil(8);
    Box::into_raw(vec![0u64; words].into_boxed_slice()).cast()
}

unsafe extern "C" fn free_handle(handle: *mut c_void) {
    let Some(uv) = uv() else { return };
    let words = uv.handle_size.div_ceil(8);
    // SAFETY: `handle` came from `alloc_handle` with this size; libuv is done with it.
    drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(handle.cast::<u64>(), words)) });
}

fn ok(status: sys::napi_status) -> Option<()> {
    (status == sys::Status::napi_ok).then_some(())
}

impl LoopWatch {
    /// Watches `fd` on `env`'s event loop; `callback` is called with no arguments whenever it
    /// is readable, after the eventfd's counter is reset. With a non-zero `busy_poll`, the
    /// loop can be kept polling (see [`LoopWatch::busy`]). `None` if libuv is not available or
    /// a step fails (nothing is left behind then).
    pub fn new(
        env: sys::napi_env,
        fd: c_int,
        callback: sys::napi_value,
        busy_poll: Duration,
    ) -> Option<Self> {
        let uv = uv()?;
        let mut uv_loop: *mut sys::uv_loop_s = ptr::null_mut();
        // SAFETY: plain napi calls on the JS thread with out-pointers to locals.
        unsafe {
            ok(sys::napi_get_uv_event_loop(env, &raw mut uv_loop))?;
            let mut callback_ref = ptr::null_mut();
            ok(sys::napi_create_reference(
                env,
                callback,
                1,
                &raw mut callback_ref,
            ))?;
            let mut name = ptr::null_mut();
            let mut async_ctx = ptr::null_mut();
            let made = ok(sys::napi_create_string_utf8(
                env,
                c"kaio:completion".as_ptr(),
                "kaio:completion".len() as isize,
                &raw mut name,
            ))
            .and_then(|()| {
                ok(sys::napi_async_init(
                    env,
                    ptr::null_mut(),
                    name,
                    &raw mut async_ctx,
                ))
            });
            if made.is_none() {
                sys::napi_delete_reference(env, callback_ref);
                return None;
            }
            let handle = alloc_handle(uv.handle_size);
            let inner = Box::into_raw(Box::new(Inner {
                env,
                callback: callback_ref,
                async_ctx,
                fd,
            }));
            let mut watch = Self {
                uv,
                uv_loop: uv_loop.cast_const().cast(),
                handle,
                inner,
                spin: None,
            };
            if (uv.poll_init)(uv_loop.cast(), handle, fd) != 0 {
                // Not initialised: free directly (uv_close is only for initialised handles).
                free_handle(handle);
                watch.release_inner();
                return None;
            }
            if !busy_poll.is_zero() {
                let idle = alloc_handle(uv.handle_size);
                if (uv.idle_init)(uv_loop.cast(), idle) != 0 {
                    free_handle(idle);
                } else {
                    let spin = Box::new(Spin {
                        budget: busy_poll,
                        deadline: Cell::new(Instant::now()),
                        active: Cell::new(false),
                    });
                    *idle.cast::<*const Spin>() = &raw const *spin;
                    // Never what keeps the process alive: the poll handle's ref does that.
                    (uv.unref_handle)(idle);
                    watch.spin = Some((idle, spin));
                }
            }
            // `data` is the first member of every libuv handle.
            *handle.cast::<*mut c_void>() = inner.cast();
            (uv.unref_handle)(handle);
            if (uv.poll_start)(handle, UV_READABLE, on_readable) != 0 {
                watch.close();
                return None;
            }
            Some(watch)
        }
    }

    /// Keeps the event loop alive while `true` (requests pending), or lets it exit.
    pub fn set_ref(&self, referenced: bool) {
        // SAFETY: an open handle, on the loop's thread.
        unsafe {
            if referenced {
                (self.uv.ref_handle)(self.handle);
            } else {
                (self.uv.unref_handle)(self.handle);
            }
        }
    }

    /// Milliseconds since the event loop last updated its time (at the start of each
    /// iteration and after each poll): how long the current loop phase has been running.
    pub fn phase_ms(&self) -> u64 {
        // SAFETY: the live loop, read on its own thread.
        let then = unsafe { (self.uv.now)(self.uv_loop) };
        loop_clock_ms().saturating_sub(then)
    }

    /// Signals the watched eventfd: the loop calls back in its next poll phase.
    pub fn wake(&self) {
        // SAFETY: `inner` is live until `close`, which consumes the watch.
        let fd = unsafe { (*self.inner).fd };
        let _ = kaio_core::sys::eventfd_write(fd, 1);
    }

    /// Whether busy polling is on.
    pub fn busy_polls(&self) -> bool {
        self.spin.is_some()
    }

    /// Busy polling: with requests `outstanding`, keeps the loop polling (not sleeping) for
    /// the next `busy_poll` from now; without, stops at once. No-op when busy polling is off.
    pub fn busy(&self, outstanding: bool) {
        let Some((idle, spin)) = &self.spin else {
            return;
        };
        // SAFETY: an initialised idle handle, on the loop's thread; start/stop are idempotent
        // in libuv but `active` saves the calls.
        unsafe {
            if outstanding {
                spin.deadline.set(Instant::now() + spin.budget);
                if !spin.active.replace(true) {
                    (self.uv.idle_start)(*idle, on_idle);
                }
            } else if spin.active.replace(false) {
                (self.uv.idle_stop)(*idle);
            }
        }
    }

    /// Frees the napi reference and async context.
    fn release_inner(&self) {
        // SAFETY: `inner` came from Box::into_raw in `new` and is released once (close
        // consumes the watch); the napi handles are live and we are on the JS thread.
        unsafe {
            let inner = Box::from_raw(self.inner);
            sys::napi_async_destroy(inner.env, inner.async_ctx);
            sys::napi_delete_reference(inner.env, inner.callback);
        }
    }

    /// Stops watching and closes the handle; its memory is freed by libuv's close callback.
    /// The callback is never called after this returns.
    pub fn close(mut self) {
        // SAFETY: initialised handles, closed once (this consumes the watch), on the loop's
        // thread. Clearing `data` first makes a callback already queued in this loop
        // iteration a no-op (the `Spin` it pointed to is dropped here).
        unsafe {
            (self.uv.poll_stop)(self.handle);
            *self.handle.cast::<*mut c_void>() = ptr::null_mut();
            (self.uv.close)(self.handle, Some(free_handle));
            if let Some((idle, _spin)) = self.spin.take() {
                (self.uv.idle_stop)(idle);
                *idle.cast::<*mut c_void>() = ptr::null_mut();
                (self.uv.close)(idle, Some(free_handle));
            }
        }
        self.release_inner();
    }
}

/// The clock behind libuv's loop time (`uv__hrtime(UV_CLOCK_FAST)`), in milliseconds:
/// `CLOCK_MONOTONIC_COARSE` when its resolution is 1 ms or finer, else `CLOCK_MONOTONIC`.
fn loop_clock_ms() -> u64 {
    static CLOCK: OnceLock<libc::clockid_t> = OnceLock::new();
    let id = *CLOCK.get_or_init(|| {
        let mut res = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: an out-pointer to a local.
        let ok = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &raw mut res) } == 0;
        if ok && res.tv_sec == 0 && res.tv_nsec <= 1_000_000 {
            libc::CLOCK_MONOTONIC_COARSE
        } else {
            libc::CLOCK_MONOTONIC
        }
    });
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: an out-pointer to a local; monotonic clocks always exist on Linux.
    unsafe { libc::clock_gettime(id, &raw mut t) };
    t.tv_sec as u64 * 1000 + t.tv_nsec as u64 / 1_000_000
}

/// Each loop turn while busy polling: stops the spin once its deadline has passed.
unsafe extern "C" fn on_idle(handle: *mut c_void) {
    // SAFETY: `data` is null after `close`, else the live `Spin` (see `LoopWatch::new`).
    let spin = unsafe { *handle.cast::<*const Spin>() };
    if spin.is_null() {
        return;
    }
    // SAFETY: live until `close`, on this thread.
    let spin = unsafe { &*spin };
    if Instant::now() >= spin.deadline.get() {
        spin.active.set(false);
        if let Some(uv) = uv() {
            // SAFETY: an open handle on its loop's thread.
            unsafe { (uv.idle_stop)(handle) };
        }
    }
}

unsafe extern "C" fn on_readable(handle: *mut c_void, status: c_int, _events: c_int) {
    // SAFETY: `data` is null after `close`, else the live `Inner` (see `LoopWatch::new`).
    let inner = unsafe { *handle.cast::<*mut Inner>() };
    if inner.is_null() {
        return;
    }
    // SAFETY: live until `close`, which cannot run concurrently (same thread).
    let Inner {
        env,
        callback,
        async_ctx,
        fd,
    } = *unsafe { &*inner };
    if status < 0 {
        // Cannot happen for an eventfd; never spin on an error.
        if let Some(uv) = uv() {
            // SAFETY: an open handle on its loop's thread.
            unsafe { (uv.poll_stop)(handle) };
        }
    }
    // Reset the counter before JavaScript collects (ring and mailbox): anything finishing
    // after this point signals again, and a callback that does not collect cannot spin.
    let _ = kaio_core::sys::eventfd_read(fd);
    // SAFETY: napi calls on the env's thread inside a handle scope; `callback` is a strong
    // reference to a function. The callback may close the watch (it only defers freeing).
    unsafe {
        let mut scope = ptr::null_mut();
        if sys::napi_open_handle_scope(env, &raw mut scope) != sys::Status::napi_ok {
            return;
        }
        let mut func = ptr::null_mut();
        let mut recv = ptr::null_mut();
        let mut result = ptr::null_mut();
        if sys::napi_get_reference_value(env, callback, &raw mut func) == sys::Status::napi_ok
            && !func.is_null()
            // napi_make_callback wants an object as the receiver.
            && sys::napi_get_global(env, &raw mut recv) == sys::Status::napi_ok
        {
            let status = sys::napi_make_callback(
                env,
                async_ctx,
                recv,
                func,
                0,
                ptr::null(),
                &raw mut result,
            );

            if status == sys::Status::napi_pending_exception {
                // An exception from the callback is uncaught, as for any event-loop callback.
                let mut err = ptr::null_mut();
                if sys::napi_get_and_clear_last_exception(env, &raw mut err) == sys::Status::napi_ok
                {
                    sys::napi_fatal_exception(env, err);
                }
            }
        }
        sys::napi_close_handle_scope(env, scope);
    }
}
