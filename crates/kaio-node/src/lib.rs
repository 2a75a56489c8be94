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

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_void;
use std::rc::Rc;
use std::sync::Arc;

use kaio_core::mem::AlignedBuf;
use kaio_core::{Backend, Completion, Mailbox, Op, Request};
use napi::bindgen_prelude::{
    BigInt, BufferSlice, Either, Float64Array, Float64ArraySlice, FromNapiValue, Function, Object,
    Uint8Array, Uint8ArraySlice,
};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Error, JsValue, Result, Status};
use napi_derive::napi;

mod fast;
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
/// The calls made per request or per event-loop turn (`ctxRead`, `ctxWrite`, `ctxVectored`,
/// `ctxSync`, `ctxPoll`, `ctxFlush`, `ctxDrain`, `ctxSetRef`) are free functions that name the
/// context by [`handle`](NativeContext::handle) (see [`Hot`]); the rest are methods.
#[napi]
pub struct NativeContext {
    handle: u32,
    hot: Rc<Hot>,
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

/// What the per-request calls need, found by handle in a per-thread table. A `#[napi]` method
/// pays on every call for `napi_unwrap`, a type-tag check and napi-rs's borrow registry (a
/// process-wide mutex and hash map): 9% of CPU at page-cache 4k depth 32. A table lookup by
/// number costs a fraction of that.
struct Hot {
    engine: Slot,
    /// The caller's completion array (`[id, res, res2]*`), written by `flush` and `drain`.
    out: *mut f64,
    out_cap: usize,
    /// Completions that did not fit into `out` yet.
    spill: RefCell<Vec<Completion>>,
    /// Whether the waker keeps the event loop alive.
    referenced: Cell<bool>,
}

/// How long one event-loop phase may keep settling completions reaped inline before they
/// wait for the loop's next turn (see [`Hot::deliver_inline`]).
#[cfg(target_os = "linux")]
const YIELD_AFTER_MS: u64 = 2;

thread_local! {
    /// Live contexts of this thread's environment, by handle. Each JS thread (main, worker)
    /// has its own table, as it has its own contexts.
    static CONTEXTS: RefCell<HashMap<u32, Rc<Hot>>> = RefCell::new(HashMap::new());
    static NEXT_HANDLE: Cell<u32> = const { Cell::new(1) };
}

/// The context named `handle`, or an error once it is destroyed (or if it never existed).
fn hot(handle: u32) -> Result<Rc<Hot>> {
    CONTEXTS
        .with(|m| m.borrow().get(&handle).cloned())
        .ok_or_else(|| Error::new(Status::Closing, "context destroyed"))
}

impl Hot {
    fn with<T>(&self, f: impl FnOnce(&Backend) -> T) -> Result<T> {
        self.engine
            .borrow()
            .as_ref()
            .map(|e| f(&e.backend))
            .ok_or_else(|| Error::new(Status::Closing, "context destroyed"))
    }

    /// Keeps the event loop alive (`true`) while requests are pending, or lets it exit.
    fn set_ref(&self, env: Env, referenced: bool) -> Result<()> {
        if referenced == self.referenced.get() {
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
        self.referenced.set(referenced);
        Ok(())
    }

    /// Busy polling (when on): keep the loop polling while the engine has requests
    /// outstanding, stop once it has none. Called after each submit and each collect.
    fn spin(&self) {
        #[cfg(target_os = "linux")]
        if let Some(Engine {
            backend,
            waker: Waker::Loop(w),
        }) = self.engine.borrow().as_ref()
        {
            if w.busy_polls() {
                w.busy(backend.outstanding() > 0);
            }
        }
    }

    /// Completions the caller's thread just reaped itself (buffered I/O finishes inside
    /// `io_submit`). Settling them at once lets a promise chain that awaits one cached read
    /// after another run inside one microtask checkpoint forever, and timers and sockets
    /// would never run. Once the current loop phase has run for [`YIELD_AFTER_MS`], they wait
    /// for the loop's next poll phase instead (the eventfd is signalled; `ctx_drain` delivers
    /// them, and so does any later flush of that phase), so the loop turns at least that
    /// often, as it does with node:fs. Returns how many were written to the completion array.
    fn deliver_inline(&self, cs: Vec<Completion>) -> u32 {
        #[cfg(target_os = "linux")]
        if !cs.is_empty() || !self.spill.borrow().is_empty() {
            if let Some(Engine {
                waker: Waker::Loop(w),
                ..
            }) = self.engine.borrow().as_ref()
            {
                if w.phase_ms() >= YIELD_AFTER_MS {
                    self.spill.borrow_mut().extend(cs);
                    w.wake();
                    return 0;
                }
            }
        }
        self.deliver(cs)
    }

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
    /// `busy_poll_us`: microseconds the event loop keeps polling for completions after a
    /// submit or completion while requests are outstanding (0: off; see [`uvpoll`]; ignored
    /// without libuv). Errors carry the message `syscall:errno` for TypeScript to turn into a
    /// system error.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        kind: String,
        size: u32,
        on_ready: Function<(), ()>,
        mut out: Float64ArraySlice<'_>,
        busy_poll_us: u32,
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
            if let Some(watch) = uvpoll::LoopWatch::new(
                env.raw(),
                fd,
                on_ready.raw(),
                std::time::Duration::from_micros(busy_poll_us.into()),
            ) {
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
        let hot = Rc::new(Hot {
            engine: backend.clone(),
            out: out_ptr,
            out_cap: out_len / 3,
            spill: RefCell::new(Vec::new()),
            referenced: Cell::new(false),
        });
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
        let handle = NEXT_HANDLE.with(|n| {
            let h = n.get();
            n.set(h.wrapping_add(1).max(1));
            h
        });
        CONTEXTS.with(|m| m.borrow_mut().insert(handle, hot.clone()));
        Ok(Self {
            handle,
            hot,
            env: env.raw(),
            hook: Some(hook),
        })
    }

    /// The number that names this context in the per-request calls.
    #[napi(getter)]
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// Withdraws request `id`; returns its result code if it had not started.
    #[napi]
    pub fn cancel(&self, id: u32) -> Result<Option<f64>> {
        Ok(self
            .hot
            .with(|b| b.cancel(u64::from(id)))?
            .map(|c| c.res as f64))
    }

    /// Starts closing: returns the completions of requests that never started.
    #[napi]
    pub fn close(&self) -> Result<Option<Float64Array>> {
        Ok(to_js(self.hot.with(Backend::close)?.0))
    }

    /// Stops the threads and frees the kernel context. Blocks until running requests finish
    /// (none, when called after every completion was delivered).
    #[napi]
    pub fn destroy(&mut self, env: Env) -> Result<()> {
        self.hot.set_ref(env, false)?;
        self.teardown();
        Ok(())
    }
}

impl NativeContext {
    /// Unregisters the cleanup hook (unless it already ran) and drops the backend, which
    /// joins its threads and waits for the kernel. Runs on the JS thread.
    fn teardown(&mut self) {
        // At thread exit the table may already be gone; then so is every use of the handle.
        let _ = CONTEXTS.try_with(|m| m.borrow_mut().remove(&self.handle));
        let engine = self.hot.engine.borrow_mut().take();
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

/// The per-request calls `ctxRead(handle, id, fd, offset, buf, flags, priority)` and
/// `ctxWrite(...)` (see [`fast`]). Called once, when the module loads.
#[napi(
    ts_return_type = "{ ctxRead: (handle: number, id: number, fd: number, offset: number | bigint, buf: Uint8Array, flags: number, priority: number) => void; ctxWrite: (handle: number, id: number, fd: number, offset: number | bigint, buf: Uint8Array, flags: number, priority: number) => void }"
)]
pub fn fast_calls(env: &Env) -> Result<Object<'_>> {
    let raw = fast::functions(env.raw())
        .map_err(|_| Error::new(Status::GenericFailure, "creating the per-request calls"))?;
    // SAFETY: `raw` is an object just created in this env.
    unsafe { Object::from_napi_value(env.raw(), raw) }
}

/// Submits what context `handle` has queued; writes the completions available now into its
/// completion array as `[id, res, res2]*` and returns their count (call again while it is
/// full).
#[napi]
pub fn ctx_flush(handle: u32) -> Result<u32> {
    let hot = hot(handle)?;
    let cs = hot.with(Backend::flush)?;
    hot.spin();
    Ok(hot.deliver_inline(cs))
}

/// Called when woken: collects the completions that signalled (the kernel ring and the
/// mailbox), writes them into the completion array and returns the count (call again while
/// it is full). 0 once the context is destroyed.
#[napi]
pub fn ctx_drain(handle: u32) -> u32 {
    let Ok(hot) = hot(handle) else { return 0 };
    let cs = hot.with(Backend::collect).unwrap_or_default();
    hot.spin();
    hot.deliver(cs)
}

/// Queues a vectored read (`write = false`) or write over `bufs` on context `handle`.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn ctx_vectored(
    handle: u32,
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
    let mut req = unsafe { Request::vectored(u64::from(id), fd, offset_of(offset), iov, write) };
    options(&mut req, flags, priority);
    hot(handle)?.with(|b| b.push(req))
}

/// Queues `fsync` (`data_only = false`) or `fdatasync` on context `handle`.
#[napi]
pub fn ctx_sync(handle: u32, id: u32, fd: i32, data_only: bool, priority: i32) -> Result<()> {
    let op = if data_only { Op::Fdsync } else { Op::Fsync };
    let mut req = Request::new(u64::from(id), fd, 0, op);
    options(&mut req, 0, priority);
    hot(handle)?.with(|b| b.push(req))
}

/// Queues a poll for `events` on context `handle`.
#[napi]
pub fn ctx_poll(handle: u32, id: u32, fd: i32, events: u32, priority: i32) -> Result<()> {
    let mut req = Request::new(u64::from(id), fd, 0, Op::Poll { events });
    options(&mut req, 0, priority);
    hot(handle)?.with(|b| b.push(req))
}

/// Keeps the event loop alive (`true`) while context `handle` has requests pending, or lets
/// it exit. A destroyed context holds nothing, so this is then a no-op.
#[napi]
pub fn ctx_set_ref(env: Env, handle: u32, referenced: bool) -> Result<()> {
    match hot(handle) {
        Ok(hot) => hot.set_ref(env, referenced),
        Err(_) => Ok(()),
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

/// Allocates `size` zero bytes aligned to `alignment` (a power of two) as a Buffer whose
/// finalizer frees them; 2 MiB and up get transparent huge pages (see `kaio_core::mem`).
#[napi]
pub fn alloc_aligned(env: &Env, size: u32, alignment: u32) -> Result<BufferSlice<'_>> {
    let buf = AlignedBuf::zeroed(size as usize, alignment as usize)
        .map_err(|e| Error::new(Status::GenericFailure, e.to_string()))?;
    let (ptr, len) = (buf.as_ptr(), buf.len());
    // SAFETY: `buf` owns `len` initialised bytes at `ptr`; it moves into the finalizer, which
    // drops it (freeing the memory) exactly once, after V8 lets go of the Buffer.
    let out = unsafe {
        BufferSlice::from_external(env, ptr, len, buf, |env, buf| {
            let _ = env.adjust_external_memory(-(buf.len() as i64));
            drop(buf);
        })
    }?;
    // V8 sees only a small object: tell it how much memory that object holds, so that
    // dropped buffers are collected as soon as their size warrants.
    env.adjust_external_memory(len as i64)?;
    Ok(out)
}

/// The address of a view's first byte modulo `alignment` (0 when aligned).
#[napi]
pub fn misalignment(buf: Uint8ArraySlice<'_>, alignment: u32) -> u32 {
    (buf.as_ptr() as usize % alignment.max(1) as usize) as u32
}
