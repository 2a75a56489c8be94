//! The cached fast path's calls (`kaio_core::sys::cached`): answered on the JS thread from
//! the kernel's caches, or refused with `-EAGAIN` so TypeScript takes the engine's path.
//! Each returns a count or descriptor, or `-errno`; none throws for a system error.

use std::ffi::CString;
use std::ptr;

use kaio_core::sys::cached;
use napi::bindgen_prelude::{BufferSlice, Either, Float64ArraySlice, FromNapiValue};
use napi::{Env, Result};
use napi_derive::napi;

const AGAIN: i32 = -cached::WOULD_BLOCK;

/// A path for the kernel; one with a NUL byte is left to node:fs, which rejects it.
fn c_path(path: String) -> Option<CString> {
    CString::new(path).ok()
}

/// The view as node's 18 stat fields, if it is long enough.
fn fields<'a>(out: &'a mut Float64ArraySlice<'_>) -> Option<&'a mut cached::StatFields> {
    // SAFETY: the view is borrowed for this call only, on the JS thread; nothing else writes it.
    let all = unsafe { out.as_mut() };
    all.get_mut(..18).and_then(|s| s.try_into().ok())
}

/// `stat` (`follow`) or `lstat` of `path` into `out` (node's 18 fields): 0 or `-errno`.
#[napi]
pub fn cached_stat(path: String, follow: bool, mut out: Float64ArraySlice<'_>) -> i32 {
    let (Some(p), Some(f)) = (c_path(path), fields(&mut out)) else {
        return AGAIN;
    };
    match cached::stat(&p, follow, f) {
        Ok(()) => 0,
        Err(e) => -e,
    }
}

/// `fstat` of `fd` into `out` if it is on a local file system: 0 or `-errno`.
#[napi]
pub fn cached_fstat(fd: i32, mut out: Float64ArraySlice<'_>) -> i32 {
    let Some(f) = fields(&mut out) else {
        return AGAIN;
    };
    match cached::fstatx(fd, f) {
        Ok(()) => 0,
        Err(e) => -e,
    }
}

/// Opens the regular file `path` with `flags` and fills `out` with its stat: the descriptor or
/// `-errno`.
#[napi]
pub fn cached_open(path: String, flags: i32, mut out: Float64ArraySlice<'_>) -> i32 {
    let (Some(p), Some(f)) = (c_path(path), fields(&mut out)) else {
        return AGAIN;
    };
    cached::open(&p, flags, f).unwrap_or_else(|e| -e)
}

/// Closes `fd` on this thread (for read-only regular files the fast path opened: their close
/// writes nothing back). 0.
#[napi]
pub fn cached_close(fd: i32) -> i32 {
    cached::close(fd);
    0
}

/// The whole regular file `path` (opened with `flags`, read-only) as a new Buffer, if its
/// lookup and every page are cached and it holds 1 to `max` bytes; otherwise `-errno`.
#[napi]
pub fn cached_read_file(
    env: &Env,
    path: String,
    flags: i32,
    max: u32,
) -> Result<Either<BufferSlice<'_>, i32>> {
    let Some(p) = c_path(path) else {
        return Ok(Either::B(AGAIN));
    };
    let mut st = [0.0; 18];
    let fd = match cached::open_to_read(&p, flags, &mut st) {
        Ok(fd) => fd,
        Err(e) => return Ok(Either::B(-e)),
    };
    let size = st[8] as usize;
    if size == 0 || size > max as usize {
        cached::close(fd);
        return Ok(Either::B(AGAIN));
    }
    let mut data = ptr::null_mut();
    let mut raw = ptr::null_mut();
    // SAFETY: a plain Node-API call on the JS thread with valid out-pointers.
    let status =
        unsafe { napi::sys::napi_create_buffer(env.raw(), size, &raw mut data, &raw mut raw) };
    if status != napi::sys::Status::napi_ok {
        cached::close(fd);
        return Ok(Either::B(AGAIN));
    }
    // SAFETY: `data` is the new Buffer's `size` bytes, referenced only by `raw`, which nothing
    // else has seen yet; the read finishes before this call returns.
    let read = unsafe { cached::read_all_cached(fd, data.cast(), size) };
    cached::close(fd);
    if let Err(e) = read {
        return Ok(Either::B(-e));
    }
    // SAFETY: `raw` is a Buffer just created in this env.
    Ok(Either::A(unsafe {
        BufferSlice::from_napi_value(env.raw(), raw)
    }?))
}
