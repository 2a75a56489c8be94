//! napi-rs binding for kaio-core: converts arguments, wires the completion mailbox to the
//! event loop, and nothing else. Validation and promises live in TypeScript.
//!
//! Completions reach JavaScript through an eventfd that Node's event loop watches
//! ([`uvpoll`]: one thread hop from the kernel or a worker to the JS thread), or, where
//! libuv's functions are not exported by the host, through one weak threadsafe function.
//!
//! Buffer lifetime: the TypeScript caller keeps every view it passes in its pending table
//! until the request's completion has been delivered to it, and a context with requests
//! pending is reachable from a module-level set, so the memory stays alive; dropping a
//! backend waits for the kernel and the workers before returning.

// napi-rs hands arguments over by value; taking them by reference is not an option.
#![allow(clippy::needless_pass_by_value)]

use std::cell::RefCell;
use std::ffi::c_void;
use std::rc::Rc;
use std::sync::Arc;

use kaio_core::{Backend, Completion, Mailbox, Op, Request};
use napi::bindgen_prelude::{
    BigInt, BufferSlice, Either, Float64Array, Float64ArraySlice, Function, Uint8Array,
    Uint8ArraySlice,
};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Error, JsValue, Result, Status};
use napi_derive::napi;

#[cfg(target_os = "linux")]
mod uvpoll;

type Wake = ThreadsafeFunction<(), (), (), Status, false, true>;

/// How completions wake the JS thread.
enum Waker {
    /// The event loop watches the mailbox's eventfd.
    #[cfg(target_os = "linux")]
    Loop(uvpoll::LoopWatch),
    /// A weak threadsafe function (its raw handle, for ref/unref).
    Tsfn(usize),
}

/// The backend and its waker, shared with the env cleanup hook, which tears them down if the
/// environment goes away (process exit, worker termination) before JavaScript closed the
/// context. Only touched on the JS thread.
struct Engine {
    backend: Backend,
    waker: Waker,
}

type Slot = Rc<RefCell<Option<Engine>>>;

/// Closes the loop watch first (no callback may run once the backend is gone), then drops the
/// backend, which joins its threads and waits for the kernel.
fn shut(engine: Option<Engine>) {
    if let Some(e) = engine {
        #[cfg(target_os = "linux")]
        if let Waker::Loop(w) = e.waker {
            w.close();
        }
        drop(e.backend);
    }
}

/// Env cleanup hook: stop the threads and wait for the kernel before V8's memory goes away.
unsafe extern "C" fn env_cleanup(arg: *mut c_void) {
    // SAFETY: `arg` is the `Rc::into_raw` reference given to this registration; the hook
    // runs once, on the JS thread, and consumes it.
    let slot = unsafe { Rc::from_raw(arg.cast_const().cast::<RefCell<Option<Engine>>>()) };
    let engine = slot.borrow_mut().take();
    shut(engine);
}

/// A native context: a kernel AIO context or a worker pool, plus how it wakes the JS thread.
#[napi]
pub struct NativeContext {
    engine: Slot,
    referenced: bool,
    /// The caller's completion array (`[id, res, res2]*`), written by `flush` and `drain`.
    out: *mut f64,
    out_cap: usize,
    /// Completions that did not fit into `out` yet.
    spill: RefCell<Vec<Completion>>,
    env: napi::sys::napi_env,
    /// The cleanup hook's argument while it is registered.
    hook: Option<*const RefCell<Option<Engine>>>,
}

fn to_js(cs: Vec<Completion>) -> Option<Float64Array> {
    if cs.is_empty() {
        return None;
    }
    let mut v = Vec::with_capacity(cs.len() * 3);
    for c in cs {
        v.extend([c.user as f64, c.res as f64, c.res2 as f64]);
    }
    Some(Float64Array::new(v))
}

impl NativeContext {
    /// Copies as many completions as fit into the caller's array; the rest wait in `spill`.
    /// Returns how many were written.
    fn deliver(&self, cs: Vec<Completion>) -> u32 {
        let mut spill = self.spill.borrow_mut();
        if spill.is_empty() && cs.is_empty() {
            return 0;
        }
        spill.extend(cs);
        let n = spill.len().min(self.out_cap);
        // SAFETY: `out` points at the caller's Float64Array of `out_cap * 3` elements, which the
        // TypeScript driver keeps alive as long as this object and never detaches; we only
        // write from the JS thread inside a call the driver made.
        let out = unsafe { std::slice::from_raw_parts_mut(self.out, n * 3) };
        for (dst, c) in out.chunks_exact_mut(3).zip(spill.drain(..n)) {
            dst.copy_from_slice(&[c.user as f64, c.res as f64, c.res2 as f64]);
        }
        n as u32
    }
}

fn offset_of(o: Either<i64, BigInt>) -> i64 {
    match o {
        Either::A(n) => n,
        // Validated in TypeScript to lie in 0..2^63.
        Either::B(b) => b.get_i64().0,
    }
}

fn os_error(e: &std::io::Error, syscall: &str) -> Error {
    let errno = e.raw_os_error().unwrap_or(0);
    Error::new(Status::GenericFailure, format!("{syscall}:{errno}"))
}

#[napi]
impl NativeContext {
    /// Creates a `linux` (kernel AIO, `size` = ring capacity) or `thread` (`size` workers)
    /// context. `on_ready` is called (with no arguments) when completions wait in the mailbox.
    /// Errors carry the message `syscall:errno` for TypeScript to turn into a system error.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        kind: String,
        size: u32,
        on_ready: Function<(), ()>,
        mut out: Float64ArraySlice<'_>,
    ) -> Result<Self> {
        // SAFETY: we keep only the address; see `deliver` for the lifetime contract.
        let (out_ptr, out_len) = unsafe { (out.as_mut().as_mut_ptr(), out.len()) };
        if out_len < 3 {
            return Err(Error::new(Status::InvalidArg, "completion array too small"));
        }
        let make = |mailbox: Arc<Mailbox>| -> Result<Backend> {
            match kind.as_str() {
                #[cfg(target_os = "linux")]
                "linux" => Backend::linux(size, mailbox).map_err(|e| os_error(&e, "io_setup")),
                "thread" => {
                    Backend::thread(size, mailbox).map_err(|e| os_error(&e, "pthread_create"))
                }
                _ => Err(Error::new(
                    Status::InvalidArg,
                    format!("unknown backend {kind}"),
                )),
            }
        };
        let mut engine = None;
        #[cfg(target_os = "linux")]
        if let Ok(mailbox) = Mailbox::with_eventfd() {
            let mailbox = Arc::new(mailbox);
            let fd = mailbox.eventfd().unwrap_or(-1);
            let backend = make(mailbox)?;
            // Without libuv (not Node), the backend is dropped and remade below.
            if let Some(watch) = uvpoll::LoopWatch::new(env.raw(), fd, on_ready.raw()) {
                engine = Some(Engine {
                    backend,
                    waker: Waker::Loop(watch),
                });
            }
        }
        let engine = if let Some(e) = engine {
            e
        } else {
            let wake: Wake = on_ready
                .build_threadsafe_function::<()>()
                .weak::<true>()
                .callee_handled::<false>()
                .build_callback(|_| Ok(()))?;
            let raw_tsfn = wake.raw() as usize;
            let mailbox = Arc::new(Mailbox::new(Box::new(move || {
                // NonBlocking: the queue is unbounded; after env teardown the call fails.
                let _ = wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
            })));
            Engine {
                backend: make(mailbox)?,
                waker: Waker::Tsfn(raw_tsfn),
            }
        };
        let backend: Slot = Rc::new(RefCell::new(Some(engine)));
        let hook = Rc::into_raw(backend.clone());
        // SAFETY: registering a plain function with a pointer it owns (see `env_cleanup`).
        let status = unsafe {
            napi::sys::napi_add_env_cleanup_hook(
                env.raw(),
                Some(env_cleanup),
                hook.cast_mut().cast(),
            )
        };
        if status != napi::sys::Status::napi_ok {
            // SAFETY: the registration failed, so the reference is still ours.
            drop(unsafe { Rc::from_raw(hook) });
            shut(backend.borrow_mut().take());
            return Err(Error::new(
                Status::GenericFailure,
                "napi_add_env_cleanup_hook failed",
            ));
        }
        Ok(Self {
            engine: backend,
            env: env.raw(),
            hook: Some(hook),
            referenced: false,
            out: out_ptr,
            out_cap: out_len / 3,
            spill: RefCell::new(Vec::new()),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Backend) -> T) -> Result<T> {
        self.engine
            .borrow()
            .as_ref()
            .map(|e| f(&e.backend))
            .ok_or_else(|| Error::new(Status::Closing, "context destroyed"))
    }

    fn push(&self, req: Request) -> Result<()> {
        self.with(|b| b.push(req))
    }

    /// Queues a read into `buf` (the caller keeps `buf` alive until the completion).
    #[napi]
    pub fn read(
        &self,
        id: u32,
        fd: i32,
        offset: Either<i64, BigInt>,
        mut buf: Uint8ArraySlice<'_>,
        flags: i32,
        priority: i32,
    ) -> Result<()> {
        // SAFETY: the view is pinned by the TypeScript pending table until its completion.
        let (ptr, len) = unsafe { (buf.as_mut().as_mut_ptr(), buf.len()) };
        // SAFETY: see the module docs: the memory outlives the request.
        let mut req = unsafe { Request::read(u64::from(id), fd, offset_of(offset), ptr, len) };
        options(&mut req, flags, priority);
        self.push(req)
    }

    /// Queues a write from `buf` (the caller keeps `buf` alive until the completion).
    #[napi]
    pub fn write(
        &self,
        id: u32,
        fd: i32,
        offset: Either<i64, BigInt>,
        buf: Uint8ArraySlice<'_>,
        flags: i32,
        priority: i32,
    ) -> Result<()> {
        // SAFETY: see the module docs: the memory outlives the request.
        let mut req = unsafe {
            Request::write(
                u64::from(id),
                fd,
                offset_of(offset),
                buf.as_ptr(),
                buf.len(),
            )
        };
        options(&mut req, flags, priority);
        self.push(req)
    }

    /// Queues a vectored read (`write = false`) or write over `bufs`.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn vectored(
        &self,
        id: u32,
        fd: i32,
        offset: Either<i64, BigInt>,
        mut bufs: Vec<Uint8Array>,
        write: bool,
        flags: i32,
        priority: i32,
    ) -> Result<()> {
        let iov: Box<[libc::iovec]> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                // SAFETY: each view is pinned by the TypeScript pending table.
                iov_base: unsafe { b.as_mut().as_mut_ptr().cast() },
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: see the module docs: the memory outlives the request.
        let mut req =
            unsafe { Request::vectored(u64::from(id), fd, offset_of(offset), iov, write) };
        options(&mut req, flags, priority);
        self.push(req)
    }

    /// Queues `fsync` (`data_only = false`) or `fdatasync`.
    #[napi]
    pub fn sync(&self, id: u32, fd: i32, data_only: bool, priority: i32) -> Result<()> {
        let op = if data_only { Op::Fdsync } else { Op::Fsync };
        let mut req = Request::new(u64::from(id), fd, 0, op);
        options(&mut req, 0, priority);
        self.push(req)
    }

    /// Queues a poll for `events`.
    #[napi]
    pub fn poll(&self, id: u32, fd: i32, events: u32, priority: i32) -> Result<()> {
        let mut req = Request::new(u64::from(id), fd, 0, Op::Poll { events });
        options(&mut req, 0, priority);
        self.push(req)
    }

    /// Submits what is queued; writes the completions available now into the completion
    /// array as `[id, res, res2]*` and returns their count (call again while it is full).
    #[napi]
    pub fn flush(&self) -> Result<u32> {
        let cs = self.with(Backend::flush)?;
        Ok(self.deliver(cs))
    }

    /// Called when woken: collects the completions that signalled (the kernel ring and the
    /// mailbox), writes them into the completion array and returns the count (call again
    /// while it is full).
    #[napi]
    pub fn drain(&self) -> u32 {
        let cs = self.with(Backend::collect).unwrap_or_default();
        self.deliver(cs)
    }

    /// Withdraws request `id`; returns its result code if it had not started.
    #[napi]
    pub fn cancel(&self, id: u32) -> Result<Option<f64>> {
        Ok(self
            .with(|b| b.cancel(u64::from(id)))?
            .map(|c| c.res as f64))
    }

    /// Starts closing: returns the completions of requests that never started.
    #[napi]
    pub fn close(&self) -> Result<Option<Float64Array>> {
        Ok(to_js(self.with(Backend::close)?.0))
    }

    /// Stops the threads and frees the kernel context. Blocks until running requests finish
    /// (none, when called after every completion was delivered).
    #[napi]
    pub fn destroy(&mut self, env: Env) -> Result<()> {
        self.set_ref(env, false)?;
        self.teardown();
        Ok(())
    }

    /// Keeps the event loop alive (`true`) while requests are pending, or lets it exit.
    #[napi]
    pub fn set_ref(&mut self, env: Env, referenced: bool) -> Result<()> {
        if referenced == self.referenced {
            return Ok(());
        }
        match self.engine.borrow().as_ref().map(|e| &e.waker) {
            #[cfg(target_os = "linux")]
            Some(Waker::Loop(w)) => w.set_ref(referenced),
            Some(Waker::Tsfn(raw)) => {
                let raw = *raw as napi::sys::napi_threadsafe_function;
                // SAFETY: `raw` is the live tsfn owned by our mailbox; we are on the JS thread.
                let status = unsafe {
                    if referenced {
                        napi::sys::napi_ref_threadsafe_function(env.raw(), raw)
                    } else {
                        napi::sys::napi_unref_threadsafe_function(env.raw(), raw)
                    }
                };
                if status != napi::sys::Status::napi_ok {
                    return Err(Error::new(Status::GenericFailure, "tsfn ref failed"));
                }
            }
            // Destroyed: nothing keeps the loop alive any more.
            None => {}
        }
        self.referenced = referenced;
        Ok(())
    }
}

impl NativeContext {
    /// Unregisters the cleanup hook (unless it already ran) and drops the backend, which
    /// joins its threads and waits for the kernel. Runs on the JS thread.
    fn teardown(&mut self) {
        let engine = self.engine.borrow_mut().take();
        if let Some(hook) = self.hook.take() {
            // An empty slot with the hook still registered means the hook ran (env teardown)
            // and consumed its reference; otherwise take it back.
            if engine.is_some() {
                // SAFETY: same function and argument as registered, on the env's thread.
                unsafe {
                    napi::sys::napi_remove_env_cleanup_hook(
                        self.env,
                        Some(env_cleanup),
                        hook.cast_mut().cast(),
                    );
                    drop(Rc::from_raw(hook));
                }
            }
        }
        shut(engine);
    }
}

/// A context collected without `close()`: nothing is pending (the TypeScript driver keeps busy
/// contexts reachable), so this only frees the kernel context and stops the threads.
impl Drop for NativeContext {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn options(req: &mut Request, flags: i32, priority: i32) {
    req.rw_flags = flags;
    req.priority = (priority >= 0).then_some(priority as u16);
}

/// Kernel AIO availability: `[available, reason, kernel release]`.
#[napi]
pub fn probe() -> (bool, String, String) {
    let p = kaio_core::probe::probe();
    (p.available, p.reason.clone(), p.kernel.clone())
}

/// Allocates `size` bytes aligned to `alignment` (a power of two), zero-filled, as a Buffer
/// whose finalizer frees it with the same layout.
#[napi]
pub fn alloc_aligned(env: &Env, size: u32, alignment: u32) -> Result<BufferSlice<'_>> {
    let size = size as usize;
    let layout = std::alloc::Layout::from_size_align(size.max(1), alignment as usize)
        .map_err(|e| Error::new(Status::InvalidArg, e.to_string()))?;
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
    if ptr.is_null() {
        return Err(Error::new(Status::GenericFailure, "ENOMEM"));
    }
    // SAFETY: `ptr` is a fresh allocation of `size` bytes; the finalizer frees it with the
    // layout it was allocated with, exactly once.
    unsafe {
        BufferSlice::from_external(env, ptr, size, layout, move |_, layout| {
            std::alloc::dealloc(ptr, layout);
        })
    }
}

/// The address of a view's first byte modulo `alignment` (0 when aligned).
#[napi]
pub fn misalignment(buf: Uint8ArraySlice<'_>, alignment: u32) -> u32 {
    (buf.as_ptr() as usize % alignment.max(1) as usize) as u32
}
