//! Watching the completion eventfd from Node's own event loop (libuv `uv_poll`), so that a
//! kernel completion wakes the JavaScript thread directly: one thread hop, as fio's, instead
//! of two (eventfd -> completion thread -> threadsafe function -> loop).
//!
//! libuv's functions are looked up in the host process at run time (`dlsym`): Node exports
//! them for addons. Where they are missing (a runtime that is not Node), [`LoopWatch::new`]
//! returns `None` and the caller keeps the threadsafe-function path.
//!
//! Everything here runs on the JavaScript thread of the environment the watch was made in.

use std::ffi::{c_int, c_void, CStr};
use std::ptr;
use std::sync::OnceLock;

use napi::sys;

type PollCb = unsafe extern "C" fn(handle: *mut c_void, status: c_int, events: c_int);
type CloseCb = unsafe extern "C" fn(handle: *mut c_void);

/// `UV_POLL` in libuv's `uv_handle_type`, `UV_READABLE` in `uv_poll_event` (stable ABI).
const UV_POLL: c_int = 8;
const UV_READABLE: c_int = 1;

struct Uv {
    handle_size: usize,
    poll_init: unsafe extern "C" fn(*mut c_void, *mut c_void, c_int) -> c_int,
    poll_start: unsafe extern "C" fn(*mut c_void, c_int, PollCb) -> c_int,
    poll_stop: unsafe extern "C" fn(*mut c_void) -> c_int,
    close: unsafe extern "C" fn(*mut c_void, Option<CloseCb>),
    ref_handle: unsafe extern "C" fn(*mut c_void),
    unref_handle: unsafe extern "C" fn(*mut c_void),
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
                handle_size: handle_size(UV_POLL),
                poll_init: symbol(c"uv_poll_init")?,
                poll_start: symbol(c"uv_poll_start")?,
                poll_stop: symbol(c"uv_poll_stop")?,
                close: symbol(c"uv_close")?,
                ref_handle: symbol(c"uv_ref")?,
                unref_handle: symbol(c"uv_unref")?,
            })
        }
    })
    .as_ref()
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
    /// Heap memory of `uv.handle_size` bytes (u64 words, so pointer-aligned).
    handle: *mut c_void,
    inner: *mut Inner,
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
    /// is readable, after the eventfd's counter is reset. `None` if libuv is not available or
    /// a step fails (nothing is left behind then).
    pub fn new(env: sys::napi_env, fd: c_int, callback: sys::napi_value) -> Option<Self> {
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
            let watch = Self { uv, handle, inner };
            if (uv.poll_init)(uv_loop.cast(), handle, fd) != 0 {
                // Not initialised: free directly (uv_close is only for initialised handles).
                free_handle(handle);
                watch.release_inner();
                return None;
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
    pub fn close(self) {
        // SAFETY: an initialised handle, closed once (this consumes the watch), on the loop's
        // thread. Clearing `data` first makes a callback already queued in this loop
        // iteration a no-op.
        unsafe {
            (self.uv.poll_stop)(self.handle);
            *self.handle.cast::<*mut c_void>() = ptr::null_mut();
            (self.uv.close)(self.handle, Some(free_handle));
        }
        self.release_inner();
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
