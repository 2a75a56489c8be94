//! The cached fast path's calls (`kaio_core::sys::cached`): answered on the JS thread from
//! the kernel's caches, or refused with `-EAGAIN` so TypeScript takes the engine's path.
//! Each returns a count or descriptor, or `-errno`; none throws for a system error.

use std::ffi::CString;
use std::ptr;

use kaio_core::sys::cached;
use napi::bindgen_prelude::{BufferSlice, Either, FromNapiValue, Uint8ArraySlice};
use napi::{Env, Result};
use napi_derive::napi;

const AGAIN: i32 = -cached::WOULD_BLOCK;

/// A path for the kernel; one with a NUL byte is left to node:fs, which rejects it.
fn c_path(path: String) -> Option<CString> {
    CString::new(path).ok()
}

/// Copies `st` into `out` (at least the 256 bytes of a `struct statx`, any alignment).
fn put(st: &libc::statx, mut out: Uint8ArraySlice<'_>) -> i32 {
    // SAFETY: the view is borrowed for this call only, on the JS thread; nothing else writes it.
    let dst = unsafe { out.as_mut() };
    let size = std::mem::size_of::<libc::statx>();
    let Some(dst) = dst.get_mut(..size) else {
        return AGAIN;
    };
    // SAFETY: `st` is `size` initialised bytes (a plain C struct); `dst` is `size` bytes.
    dst.copy_from_slice(unsafe { std::slice::from_raw_parts((&raw const *st).cast::<u8>(), size) });
    0
}

/// `stat` (`follow`) or `lstat` of `path` into `out` (a `struct statx`): 0 or `-errno`.
#[napi]
pub fn cached_stat(path: String, follow: bool, out: Uint8ArraySlice<'_>) -> i32 {
    let Some(p) = c_path(path) else {
        return AGAIN;
    };
    let mut st = cached::empty_statx();
    match cached::stat(&p, follow, &mut st) {
        Ok(()) => put(&st, out),
        Err(e) => -e,
    }
}

/// `lseek(fd, offset, whence)`: the new offset, or `-errno`. `FileHandle` keeps node's file
/// position in the descriptor's own offset with it (`SEEK_SET`, `SEEK_CUR`; `SEEK_END` after
/// an append), so that other users of the descriptor see what node:fs would leave there.
#[napi]
pub fn seek(fd: i32, offset: f64, whence: i32) -> f64 {
    match kaio_core::sys::lseek(fd, offset as i64, whence) {
        Ok(pos) => pos as f64,
        Err(e) => -(e as f64),
    }
}

/// `fstat` of `fd` into `out` (a `struct statx`) if it is on a local file system: 0 or `-errno`.
#[napi]
pub fn cached_fstat(fd: i32, out: Uint8ArraySlice<'_>) -> i32 {
    let mut st = cached::empty_statx();
    match cached::fstatx(fd, &mut st) {
        Ok(()) => put(&st, out),
        Err(e) => -e,
    }
}

/// Whether `path` is a local regular file, from the caches: 0, `-NOT_REGULAR` or `-errno`.
#[napi]
pub fn cached_kind(path: String, flags: i32) -> i32 {
    let Some(p) = c_path(path) else {
        return AGAIN;
    };
    match cached::kind(&p, flags) {
        Ok(()) => 0,
        Err(e) => -e,
    }
}

/// Opens the regular file `path` with `flags`: the descriptor or `-errno` (`-NOT_REGULAR`
/// for a file that is not a local regular file).
#[napi]
pub fn cached_open(path: String, flags: i32) -> i32 {
    let Some(p) = c_path(path) else {
        return AGAIN;
    };
    let mut st = cached::empty_statx();
    cached::open(&p, flags, &mut st).unwrap_or_else(|e| -e)
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
    let mut st = cached::empty_statx();
    let fd = match cached::open_to_read(&p, flags, &mut st) {
        Ok(fd) => fd,
        Err(e) => return Ok(Either::B(-e)),
    };
    let size = usize::try_from(st.stx_size).unwrap_or(usize::MAX);
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
