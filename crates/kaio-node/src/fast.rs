//! `ctxRead`, `ctxWrite` and `ctxFlush`, the calls made once per request (a depth-1 caller
//! flushes once per request too), as plain Node-API callbacks.
//!
//! A `#[napi]` function opens a napi-rs borrow scope on every call (an `Arc<Mutex<..>>`
//! allocation and a thread-local stack push), which these calls do not need: they take only
//! numbers and a `Uint8Array`, and keep nothing from the call but the view's address, which the
//! TypeScript driver pins until the completion (see the crate docs). The arguments are
//! validated in TypeScript, so a wrong one here is a bug in kaio: it throws, never crashes.

use std::ffi::c_void;
use std::ptr;

use napi::sys;

use kaio_core::Request;

use crate::{hot, options};

type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

/// An object with the raw callbacks as `ctxRead` and `ctxWrite`.
pub(crate) fn functions(env: sys::napi_env) -> Result<sys::napi_value, sys::napi_status> {
    let mut obj = ptr::null_mut();
    // SAFETY: plain Node-API calls on the calling (JS) thread with valid out-pointers.
    unsafe {
        check(sys::napi_create_object(env, &raw mut obj))?;
        for (name, cb) in [
            (c"ctxRead", ctx_read as Callback),
            (c"ctxWrite", ctx_write as Callback),
            (c"ctxFlush", ctx_flush as Callback),
        ] {
            let mut f = ptr::null_mut();
            check(sys::napi_create_function(
                env,
                name.as_ptr(),
                name.count_bytes() as isize,
                Some(cb),
                ptr::null_mut(),
                &raw mut f,
            ))?;
            check(sys::napi_set_named_property(env, obj, name.as_ptr(), f))?;
        }
    }
    Ok(obj)
}

fn check(status: sys::napi_status) -> Result<(), sys::napi_status> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(status)
    }
}

/// `(handle, id, fd, offset, buf, flags, priority)`, read from the call.
struct Args {
    handle: u32,
    id: u32,
    fd: i32,
    offset: i64,
    ptr: *mut u8,
    len: usize,
    flags: i32,
    priority: i32,
    /// The view itself, which the binding pins until the completion.
    view: sys::napi_value,
}

/// Why a per-request call throws.
enum Failure {
    /// The context is destroyed: `ERR_AIO_CLOSED`.
    Closed,
    /// Arguments of the wrong type (a bug in kaio's TypeScript, which validates them).
    Args,
}

/// Reads the seven arguments.
///
/// # Safety
/// `env` and `info` are the ones Node passed to the running callback.
unsafe fn args(env: sys::napi_env, info: sys::napi_callback_info) -> Result<Args, Failure> {
    let mut argc = 7usize;
    let mut values = [ptr::null_mut(); 7];
    let bad = Err(Failure::Args);
    // SAFETY (all calls below): Node-API on the JS thread; `values` has room for `argc` values,
    // and Node fills missing ones with `undefined`, which the typed getters refuse.
    unsafe {
        if sys::napi_get_cb_info(
            env,
            info,
            &raw mut argc,
            values.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
        ) != sys::Status::napi_ok
        {
            return bad;
        }
        let mut n = [0u32; 2];
        let mut i = [0i32; 3];
        for (k, out) in n.iter_mut().enumerate() {
            if sys::napi_get_value_uint32(env, values[k], out) != sys::Status::napi_ok {
                return bad;
            }
        }
        for (k, out) in [2, 5, 6].into_iter().zip(i.iter_mut()) {
            if sys::napi_get_value_int32(env, values[k], out) != sys::Status::napi_ok {
                return bad;
            }
        }
        let mut offset = 0i64;
        if sys::napi_get_value_int64(env, values[3], &raw mut offset) != sys::Status::napi_ok {
            // Offsets past 2^53 arrive as bigint.
            let mut lossless = false;
            if sys::napi_get_value_bigint_int64(env, values[3], &raw mut offset, &raw mut lossless)
                != sys::Status::napi_ok
                || !lossless
            {
                return bad;
            }
        }
        let mut kind = 0;
        let mut len = 0usize;
        let mut data: *mut c_void = ptr::null_mut();
        let mut buffer = ptr::null_mut();
        let mut byte_offset = 0usize;
        if sys::napi_get_typedarray_info(
            env,
            values[4],
            &raw mut kind,
            &raw mut len,
            &raw mut data,
            &raw mut buffer,
            &raw mut byte_offset,
        ) != sys::Status::napi_ok
            || kind != sys::TypedarrayType::uint8_array
        {
            return bad;
        }
        Ok(Args {
            handle: n[0],
            id: n[1],
            fd: i[0],
            offset,
            ptr: data.cast(),
            len,
            flags: i[1],
            priority: i[2],
            view: values[4],
        })
    }
}

/// Queues `make(args)` on the context the arguments name; returns `undefined`, or throws.
///
/// # Safety
/// As [`args`].
unsafe fn queue(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    make: impl FnOnce(&Args) -> Request,
) -> sys::napi_value {
    // SAFETY: forwarded from the caller.
    let pushed = unsafe { args(env, info) }.and_then(|a| {
        let hot = hot(a.handle).ok_or(Failure::Closed)?;
        let mut req = make(&a);
        options(&mut req, a.flags, a.priority);
        // The view stays alive (a reference the binding holds) until the completion leaves
        // native code, whatever JavaScript does with it meanwhile.
        hot.pin(a.id, &[a.view]).map_err(|_| Failure::Args)?;
        if hot.with(|b| b.push(req)).is_none() {
            hot.unpin(u64::from(a.id));
            return Err(Failure::Closed);
        }
        Ok(())
    });
    match pushed {
        Ok(()) => {}
        Err(Failure::Closed) => {
            crate::closed(env);
        }
        Err(Failure::Args) => {
            crate::throw_coded(
                env,
                "ERR_INVALID_ARG_TYPE",
                "kaio: bad arguments to a native call",
                None,
            );
        }
    }
    ptr::null_mut()
}

/// `ctxRead(handle, id, fd, offset, buf, flags, priority)`: queues a read into `buf`.
unsafe extern "C" fn ctx_read(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: Node's arguments; the view's memory outlives the request (crate docs).
    unsafe {
        queue(env, info, |a| {
            Request::read(u64::from(a.id), a.fd, a.offset, a.ptr, a.len)
        })
    }
}

/// `ctxWrite(handle, id, fd, offset, buf, flags, priority)`: queues a write from `buf`.
unsafe extern "C" fn ctx_write(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: as `ctx_read`.
    unsafe {
        queue(env, info, |a| {
            Request::write(u64::from(a.id), a.fd, a.offset, a.ptr, a.len)
        })
    }
}

/// `ctxFlush(handle)`: submits what the context queued and returns how many completions it
/// wrote to the completion array (`crate::flush_handle`, without napi-rs's per-call scope).
unsafe extern "C" fn ctx_flush(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let mut argc = 1usize;
    let mut value = ptr::null_mut();
    let mut handle = 0u32;
    // SAFETY: Node-API on the JS thread with Node's arguments; room for one value.
    let ok = unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &raw mut argc,
            &raw mut value,
            ptr::null_mut(),
            ptr::null_mut(),
        ) == sys::Status::napi_ok
            && sys::napi_get_value_uint32(env, value, &raw mut handle) == sys::Status::napi_ok
    };
    if !ok {
        crate::throw_coded(
            env,
            "ERR_INVALID_ARG_TYPE",
            "kaio: bad arguments to a native call",
            None,
        );
        return ptr::null_mut();
    }
    let Some(n) = crate::flush_handle(handle) else {
        crate::closed(env);
        return ptr::null_mut();
    };
    let mut out = ptr::null_mut();
    // SAFETY: as above, with a valid out-pointer.
    if unsafe { sys::napi_create_uint32(env, n, &raw mut out) } != sys::Status::napi_ok {
        return ptr::null_mut();
    }
    out
}
