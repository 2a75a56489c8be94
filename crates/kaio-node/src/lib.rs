//! napi-rs binding for kaio-core: converts arguments, wires the completion mailbox to the
//! event loop, and nothing else. Validation and promises live in TypeScript.
//!
//! Completions reach JavaScript through an eventfd that Node's event loop watches
//! ([`uvpoll`]: one thread hop from the kernel or a worker to the JS thread), or, where
//! libuv's functions are not exported by the host, through one weak threadsafe function.
//!
//! Buffer lifetime: the binding holds a Node-API reference to every view a request uses (and
//! to the completion array) from the moment the request is queued until its completion leaves
//! native code for JavaScript ([`Hot::unpin`]), so the memory stays alive even if JavaScript
//! drops every reference to it; dropping a backend waits for the kernel and the workers before
//! returning, and only then are the remaining references released.
//!
//! Errors: every error thrown from here is a JavaScript `Error` with a `code`: `ERR_AIO_CLOSED`
//! for a context already destroyed, the errno's name (`EPERM`, ...) plus `errno` (negative, as
//! Node's) and `syscall` for a failed system call (see [`throw_coded`]).

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
    Array, BigInt, BufferSlice, Either, Float64Array, Float64ArraySlice, FromNapiValue, Function,
    Object, Uint8Array, Uint8ArraySlice, Unknown,
};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Error, JsValue, Result, Status};
use napi_derive::napi;

#[cfg(target_os = "linux")]
pub mod cached;
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
    if let Some(e) = &engine {
        // The process or worker is going away: nobody waits for an idle kernel context.
        e.backend.destroy_in_background();
    }
    shut(engine);
}

/// A native context: a kernel AIO context or a worker pool, plus how it wakes the JS thread.
/// The calls made per request or per event-loop turn (`ctxRead`, `ctxWrite`, `ctxVectored`,
/// `ctxSync`, `ctxPoll`, `ctxPath`, `ctxFd`, `ctxDrain`, `ctxSetRef`, and `fast`'s `ctxFlush`) are free functions that name the
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
    /// The env of the JS thread that owns this context (references are made and deleted there).
    env: napi::sys::napi_env,
    /// Per request id (the TypeScript driver's small, reused numbers): what it keeps alive.
    pins: RefCell<Vec<Option<Pin>>>,
    /// A reference to the completion array, held for the context's whole life.
    out_ref: Cell<napi::sys::napi_ref>,
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

/// The context named `handle`, or `None` once it is destroyed (or if it never existed).
fn hot(handle: u32) -> Option<Rc<Hot>> {
    CONTEXTS.with(|m| m.borrow().get(&handle).cloned())
}

/// The message of the `ERR_AIO_CLOSED` error thrown for a destroyed context.
const CLOSED_MESSAGE: &str = "The kaio context is closed";

/// Throws a JavaScript `Error` with `code` and `message`, plus `errno` (made negative, as
/// Node's) and `syscall` when `sys_err` is given, and returns the napi-rs error that says an
/// exception is already pending (napi-rs then throws nothing more).
fn throw_coded(
    env: napi::sys::napi_env,
    code: &str,
    message: &str,
    sys_err: Option<(i32, &str)>,
) -> Error {
    use napi::sys as s;
    let pending = Error::new(Status::PendingException, message.to_owned());
    let string = |text: &str| -> Option<s::napi_value> {
        let mut v = std::ptr::null_mut();
        // SAFETY: a UTF-8 string of the given length, on the JS thread.
        let st = unsafe {
            s::napi_create_string_utf8(env, text.as_ptr().cast(), text.len() as isize, &raw mut v)
        };
        (st == s::Status::napi_ok).then_some(v)
    };
    let (Some(code_v), Some(msg_v)) = (string(code), string(message)) else {
        return pending;
    };
    let mut err = std::ptr::null_mut();
    // SAFETY: plain Node-API calls on the JS thread with values just created in `env`.
    unsafe {
        if s::napi_create_error(env, code_v, msg_v, &raw mut err) != s::Status::napi_ok {
            return pending;
        }
        if let Some((errno, syscall)) = sys_err {
            let mut n = std::ptr::null_mut();
            s::napi_create_int32(env, -errno.abs(), &raw mut n);
            s::napi_set_named_property(env, err, c"errno".as_ptr(), n);
            if let Some(sc) = string(syscall) {
                s::napi_set_named_property(env, err, c"syscall".as_ptr(), sc);
            }
        }
        s::napi_throw(env, err);
    }
    pending
}

/// The `ERR_AIO_CLOSED` error for a destroyed context (thrown; see [`throw_coded`]).
fn closed(env: napi::sys::napi_env) -> Error {
    throw_coded(env, "ERR_AIO_CLOSED", CLOSED_MESSAGE, None)
}

/// A failed system call as a thrown node-style system error (see [`throw_coded`]).
fn os_error(env: napi::sys::napi_env, e: &std::io::Error, syscall: &str) -> Error {
    let errno = e.raw_os_error().unwrap_or(libc::EIO);
    let code = kaio_core::probe::errno_name(errno);
    throw_coded(
        env,
        &code,
        &format!("{code}: {e}, {syscall}"),
        Some((errno, syscall)),
    )
}

/// JS values that a request in flight uses, held (by Node-API references) until its
/// completion leaves native code.
enum Pin {
    One(napi::sys::napi_ref),
    Many(Vec<napi::sys::napi_ref>),
}

impl Hot {
    fn with<T>(&self, f: impl FnOnce(&Backend) -> T) -> Option<T> {
        self.engine.borrow().as_ref().map(|e| f(&e.backend))
    }

    /// Holds `values` (the views request `id` reads or writes) until [`Hot::unpin`].
    fn pin(&self, id: u32, values: &[napi::sys::napi_value]) -> Result<()> {
        let mut refs = Vec::with_capacity(values.len());
        for &v in values {
            let mut r = std::ptr::null_mut();
            // SAFETY: `v` is a live value of this env, on its JS thread.
            let st = unsafe { napi::sys::napi_create_reference(self.env, v, 1, &raw mut r) };
            if st != napi::sys::Status::napi_ok {
                self.release(refs);
                return Err(Error::new(
                    Status::GenericFailure,
                    "napi_create_reference failed",
                ));
            }
            refs.push(r);
        }
        let pin = if refs.len() == 1 {
            Pin::One(refs[0])
        } else {
            Pin::Many(refs)
        };
        let mut pins = self.pins.borrow_mut();
        let i = id as usize;
        if pins.len() <= i {
            pins.resize_with(i + 1, || None);
        }
        if let Some(old) = pins[i].replace(pin) {
            // An id is reused only after its completion was delivered (and unpinned); keep
            // both alive rather than trust that, since freeing early is the dangerous mistake.
            drop(pins);
            self.keep_both(i, old);
        }
        Ok(())
    }

    fn keep_both(&self, i: usize, old: Pin) {
        let mut pins = self.pins.borrow_mut();
        let mut all = match pins[i].take() {
            Some(Pin::One(r)) => vec![r],
            Some(Pin::Many(v)) => v,
            None => Vec::new(),
        };
        match old {
            Pin::One(r) => all.push(r),
            Pin::Many(v) => all.extend(v),
        }
        pins[i] = Some(Pin::Many(all));
    }

    /// Lets go of what request `id` kept alive: call once its completion has left native code
    /// (delivered, withdrawn or refused), never before.
    fn unpin(&self, id: u64) {
        let taken = self
            .pins
            .borrow_mut()
            .get_mut(id as usize)
            .and_then(Option::take);
        match taken {
            Some(Pin::One(r)) => self.release(vec![r]),
            Some(Pin::Many(v)) => self.release(v),
            None => {}
        }
    }

    fn release(&self, refs: Vec<napi::sys::napi_ref>) {
        for r in refs {
            // SAFETY: a reference made in `pin` on this env, deleted once, on its JS thread.
            unsafe { napi::sys::napi_delete_reference(self.env, r) };
        }
    }

    /// After the backend is gone (the kernel and the workers are done): releases everything.
    fn unpin_all(&self) {
        let all: Vec<Option<Pin>> = std::mem::take(&mut *self.pins.borrow_mut());
        for p in all.into_iter().flatten() {
            match p {
                Pin::One(r) => self.release(vec![r]),
                Pin::Many(v) => self.release(v),
            }
        }
        let out = self.out_ref.replace(std::ptr::null_mut());
        if !out.is_null() {
            self.release(vec![out]);
        }
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
            self.unpin(c.user);
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

/// The backend of kind `kind` with its waker: the event loop's watch where `loop_watch` allows
/// it and libuv works, a weak threadsafe function otherwise (see [`NativeContext::new`]).
#[allow(clippy::too_many_arguments)]
fn make_engine(
    env: Env,
    kind: &str,
    size: u32,
    on_ready: &Function<(), ()>,
    busy_poll_us: u32,
    loop_watch: bool,
    sqpoll_idle_ms: u32,
) -> Result<Engine> {
    let make = |mailbox: Arc<Mailbox>| -> Result<Backend> {
        match kind {
            #[cfg(target_os = "linux")]
            "linux" => {
                Backend::linux(size, mailbox).map_err(|e| os_error(env.raw(), &e, "io_setup"))
            }
            #[cfg(target_os = "linux")]
            "uring" => {
                let opts = kaio_core::uring::UringOptions {
                    sqpoll_idle_ms: (sqpoll_idle_ms > 0).then_some(sqpoll_idle_ms),
                    ..Default::default()
                };
                Backend::uring(size, mailbox, opts)
                    .map_err(|e| os_error(env.raw(), &e, "io_uring_setup"))
            }
            "thread" => Backend::thread(size, mailbox)
                .map_err(|e| os_error(env.raw(), &e, "pthread_create")),
            _ => Err(throw_coded(
                env.raw(),
                "ERR_INVALID_ARG_VALUE",
                &format!("unknown backend {kind}"),
                None,
            )),
        }
    };
    let mut engine = None;
    #[cfg(target_os = "linux")]
    if !loop_watch {
        // The threadsafe-function path below.
    } else if let Ok(mailbox) = Mailbox::with_eventfd() {
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
    if let Some(e) = engine {
        return Ok(e);
    }
    {
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
        Ok(Engine {
            backend: make(mailbox)?,
            waker: Waker::Tsfn(raw_tsfn),
        })
    }
}

#[napi]
impl NativeContext {
    /// Creates a `linux` (kernel AIO, `size` = ring capacity) or `thread` (`size` workers)
    /// context. `on_ready` is called (with no arguments) when completions wait in the mailbox.
    /// `busy_poll_us`: microseconds the event loop keeps polling for completions after a
    /// submit or completion while requests are outstanding (0: off; see [`uvpoll`]; ignored
    /// without libuv). `loop_watch`: whether the host's libuv may be used at all (the caller
    /// decides before any `uv_*` function is called: Bun exports them as stubs that abort the
    /// process); without it, completions arrive through a threadsafe function. Errors are
    /// thrown as node-style system errors (`code`, `errno`, `syscall`).
    #[napi(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        env: Env,
        kind: String,
        size: u32,
        on_ready: Function<(), ()>,
        mut out: Float64ArraySlice<'_>,
        busy_poll_us: u32,
        loop_watch: bool,
        sqpoll_idle_ms: u32,
    ) -> Result<Self> {
        // SAFETY: we keep only the address; the array is kept alive by `out_ref` below and the
        // TypeScript driver never detaches it (see `deliver`).
        let (out_ptr, out_len) = unsafe { (out.as_mut().as_mut_ptr(), out.len()) };
        if out_len < 3 {
            return Err(throw_coded(
                env.raw(),
                "ERR_INVALID_ARG_VALUE",
                "completion array too small",
                None,
            ));
        }
        let engine = make_engine(
            env,
            &kind,
            size,
            &on_ready,
            busy_poll_us,
            loop_watch,
            sqpoll_idle_ms,
        )?;
        let backend: Slot = Rc::new(RefCell::new(Some(engine)));
        let mut out_ref = std::ptr::null_mut();
        // SAFETY: the completion array passed to this call, on the JS thread.
        if unsafe { napi::sys::napi_create_reference(env.raw(), out.raw(), 1, &raw mut out_ref) }
            != napi::sys::Status::napi_ok
        {
            shut(backend.borrow_mut().take());
            return Err(throw_coded(
                env.raw(),
                "ERR_AIO_NATIVE",
                "napi_create_reference failed",
                None,
            ));
        }
        let hot = Rc::new(Hot {
            engine: backend.clone(),
            out: out_ptr,
            out_cap: out_len / 3,
            spill: RefCell::new(Vec::new()),
            referenced: Cell::new(false),
            env: env.raw(),
            pins: RefCell::new(Vec::new()),
            out_ref: Cell::new(out_ref),
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
            hot.unpin_all();
            return Err(throw_coded(
                env.raw(),
                "ERR_AIO_NATIVE",
                "napi_add_env_cleanup_hook failed",
                None,
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

    /// How completions reach JavaScript: `"uv_poll"` (Node's event loop watches the
    /// completion eventfd) or `"threadsafe_function"` (a weak threadsafe function, where the
    /// host has no usable libuv); `""` once destroyed.
    #[napi(getter)]
    pub fn completion_path(&self) -> &'static str {
        match self.hot.engine.borrow().as_ref().map(|e| &e.waker) {
            #[cfg(target_os = "linux")]
            Some(Waker::Loop(_)) => "uv_poll",
            Some(Waker::Tsfn(_)) => "threadsafe_function",
            None => "",
        }
    }

    /// The `io_uring` setup flags the kernel accepted (`SINGLE_ISSUER|DEFER_TASKRUN|...`); `""`
    /// for other backends.
    #[napi(getter)]
    pub fn setup_flags(&self) -> &'static str {
        match self.hot.engine.borrow().as_ref().map(|e| &e.backend) {
            #[cfg(target_os = "linux")]
            Some(Backend::Uring(u)) => u.setup_flags(),
            _ => "",
        }
    }

    /// Withdraws request `id`; returns its result code if it had not started.
    #[napi]
    pub fn cancel(&self, env: Env, id: u32) -> Result<Option<f64>> {
        let c = self
            .hot
            .with(|b| b.cancel(u64::from(id)))
            .ok_or_else(|| closed(env.raw()))?;
        Ok(c.map(|c| {
            self.hot.unpin(c.user);
            c.res as f64
        }))
    }

    /// Starts closing: returns the completions of requests that never started.
    #[napi]
    pub fn close(&self, env: Env) -> Result<Option<Float64Array>> {
        let (cs, _) = self
            .hot
            .with(Backend::close)
            .ok_or_else(|| closed(env.raw()))?;
        for c in &cs {
            self.hot.unpin(c.user);
        }
        Ok(to_js(cs))
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
        let had_engine = engine.is_some();
        shut(engine);
        // The kernel and the workers are done with every buffer: let them go. (If the env
        // cleanup hook took the engine, the env is being torn down and frees them itself.)
        if had_engine {
            self.hot.unpin_all();
        }
    }
}

/// A context collected without `close()`: nothing is pending (the TypeScript driver keeps busy
/// contexts reachable), so this only frees the kernel context and stops the threads.
impl Drop for NativeContext {
    fn drop(&mut self) {
        // A garbage collection must not wait in the kernel's teardown (see
        // `Backend::destroy_in_background`).
        let _ = self.hot.with(Backend::destroy_in_background);
        self.teardown();
    }
}

/// The per-request calls `ctxRead(handle, id, fd, offset, buf, flags, priority)` and
/// `ctxWrite(...)` (see [`fast`]). Called once, when the module loads.
#[napi(
    ts_return_type = "{ ctxRead: (handle: number, id: number, fd: number, offset: number | bigint, buf: Uint8Array, flags: number, priority: number) => void; ctxWrite: (handle: number, id: number, fd: number, offset: number | bigint, buf: Uint8Array, flags: number, priority: number) => void; ctxFlush: (handle: number) => number }"
)]
pub fn fast_calls(env: &Env) -> Result<Object<'_>> {
    let raw = fast::functions(env.raw())
        .map_err(|_| Error::new(Status::GenericFailure, "creating the per-request calls"))?;
    // SAFETY: `raw` is an object just created in this env.
    unsafe { Object::from_napi_value(env.raw(), raw) }
}

/// Submits what context `handle` has queued; writes the completions available now into its
/// completion array as `[id, res, res2]*` and returns their count (call again while it is
/// full): `fast`'s `ctxFlush`. `None` once the context is destroyed.
pub(crate) fn flush_handle(handle: u32) -> Option<u32> {
    let hot = hot(handle)?;
    let cs = hot.with(Backend::flush)?;
    hot.spin();
    Some(hot.deliver_inline(cs))
}

/// Called when woken: collects the completions that signalled (the kernel ring and the
/// mailbox), writes them into the completion array and returns the count (call again while
/// it is full). 0 once the context is destroyed.
#[napi]
pub fn ctx_drain(handle: u32) -> u32 {
    let Some(hot) = hot(handle) else { return 0 };
    let cs = hot.with(Backend::collect).unwrap_or_default();
    hot.spin();
    hot.deliver(cs)
}

/// Queues a vectored read (`write = false`) or write over `bufs` on context `handle`.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn ctx_vectored(
    env: Env,
    handle: u32,
    id: u32,
    fd: i32,
    offset: Either<i64, BigInt>,
    bufs: Array<'_>,
    write: bool,
    flags: i32,
    priority: i32,
) -> Result<()> {
    let mut views = Vec::with_capacity(bufs.len() as usize);
    let mut iov = Vec::with_capacity(bufs.len() as usize);
    for i in 0..bufs.len() {
        let bad = || {
            throw_coded(
                env.raw(),
                "ERR_INVALID_ARG_TYPE",
                "kaio: bad arguments to a native call",
                None,
            )
        };
        let view = bufs.get::<Unknown<'_>>(i)?.ok_or_else(bad)?.raw();
        // SAFETY: a value of this env, converted on its JS thread (refused unless a Uint8Array).
        let mut b = unsafe { Uint8Array::from_napi_value(env.raw(), view) }.map_err(|_| bad())?;
        views.push(view);
        iov.push(libc::iovec {
            // SAFETY: the address only; the view is pinned below until the completion.
            iov_base: unsafe { b.as_mut().as_mut_ptr().cast() },
            iov_len: b.len(),
        });
    }
    let hot = hot(handle).ok_or_else(|| closed(env.raw()))?;
    // SAFETY: every view is pinned (a reference held by the binding) until its completion.
    let mut req = unsafe {
        Request::vectored(
            u64::from(id),
            fd,
            offset_of(offset),
            iov.into_boxed_slice(),
            write,
        )
    };
    options(&mut req, flags, priority);
    push_pinned(env, &hot, id, &views, req)
}

/// Queues `fsync` (`data_only = false`) or `fdatasync` on context `handle`.
#[napi]
pub fn ctx_sync(
    env: Env,
    handle: u32,
    id: u32,
    fd: i32,
    data_only: bool,
    priority: i32,
) -> Result<()> {
    let op = if data_only { Op::Fdsync } else { Op::Fsync };
    let mut req = Request::new(u64::from(id), fd, 0, op);
    options(&mut req, 0, priority);
    push(env, handle, req)
}

/// Queues a request that holds no JavaScript memory.
fn push(env: Env, handle: u32, req: Request) -> Result<()> {
    hot(handle)
        .and_then(|h| h.with(|b| b.push(req)))
        .ok_or_else(|| closed(env.raw()))
}

/// Queues request `id`, which uses the memory of `views`: pinned first, released again if
/// the context is closed (the request then never reaches an engine).
fn push_pinned(
    env: Env,
    hot: &Hot,
    id: u32,
    views: &[napi::sys::napi_value],
    req: Request,
) -> Result<()> {
    hot.pin(id, views)?;
    if hot.with(|b| b.push(req)).is_none() {
        hot.unpin(u64::from(id));
        return Err(closed(env.raw()));
    }
    Ok(())
}

/// Queues a poll for `events` on context `handle`.
#[napi]
pub fn ctx_poll(env: Env, handle: u32, id: u32, fd: i32, events: u32, priority: i32) -> Result<()> {
    let mut req = Request::new(u64::from(id), fd, 0, Op::Poll { events });
    options(&mut req, 0, priority);
    push(env, handle, req)
}

/// Path op codes of [`ctx_path`] and [`ctx_fd`] (the TypeScript driver's `PATH_OPS`).
const OP_OPEN: u32 = 0;
const OP_CLOSE: u32 = 1;
const OP_STATX: u32 = 2;
const OP_UNLINK: u32 = 3;
const OP_RENAME: u32 = 4;
const OP_MKDIR: u32 = 5;
const OP_SYMLINK: u32 = 6;
const OP_LINK: u32 = 7;
const OP_FTRUNCATE: u32 = 8;
const OP_FALLOCATE: u32 = 11;
const OP_FADVISE: u32 = 12;

/// `ERR_INVALID_ARG_VALUE` for a path the kernel cannot take (thrown; see [`throw_coded`]).
fn bad_path(env: Env, name: &str) -> Error {
    throw_coded(
        env.raw(),
        "ERR_INVALID_ARG_VALUE",
        &format!("The argument '{name}' must be a string without null bytes"),
        None,
    )
}

/// A JavaScript string as the owned C string a path op keeps until its completion.
fn c_path(env: Env, s: String, name: &str) -> Result<std::ffi::CString> {
    std::ffi::CString::new(s).map_err(|_| bad_path(env, name))
}

/// Queues path op `op` on context `handle`: `open` (`path`, `a` = flags, `b` = mode),
/// `statx` (`path`, `a` = `AT_*` flags, `b` = mask, `out` = a view of at least 256 bytes the
/// kernel fills, pinned until the completion; with `AT_EMPTY_PATH` it describes `fd`),
/// `unlink` (`path`, `a` = 0 or `AT_REMOVEDIR`), `rename`/`link` (`path` to `path2`), `mkdir`
/// (`path`, `b` = mode), `symlink` (`path2` becomes a link to the target `path`). A path with
/// a NUL byte throws `ERR_INVALID_ARG_VALUE`.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn ctx_path(
    env: Env,
    handle: u32,
    id: u32,
    op: u32,
    fd: i32,
    path: String,
    path2: Option<String>,
    a: i32,
    b: u32,
    out: Option<Unknown<'_>>,
) -> Result<()> {
    let path = c_path(env, path, "path")?;
    let second = |name: &str| -> Result<std::ffi::CString> {
        c_path(env, path2.clone().unwrap_or_default(), name)
    };
    let user = u64::from(id);
    let req = match op {
        OP_OPEN => Request::new(
            user,
            fd,
            0,
            Op::Openat {
                path,
                flags: a,
                mode: b,
            },
        ),
        OP_UNLINK => Request::new(user, fd, 0, Op::Unlinkat { path, flags: a }),
        OP_RENAME => Request::new(
            user,
            fd,
            0,
            Op::Renameat {
                from: path,
                to: second("dest")?,
            },
        ),
        OP_LINK => Request::new(
            user,
            fd,
            0,
            Op::Linkat {
                from: path,
                to: second("dest")?,
            },
        ),
        OP_MKDIR => Request::new(user, fd, 0, Op::Mkdirat { path, mode: b }),
        OP_SYMLINK => Request::new(
            user,
            fd,
            0,
            Op::Symlinkat {
                target: path,
                path: second("path")?,
            },
        ),
        OP_STATX => {
            let bad = || {
                throw_coded(
                    env.raw(),
                    "ERR_INVALID_ARG_VALUE",
                    "kaio: statx needs a Uint8Array of at least 256 bytes at an 8-byte aligned address",
                    None,
                )
            };
            let view = out.ok_or_else(bad)?.raw();
            // SAFETY: a value of this env, converted on its JS thread (refused unless a
            // Uint8Array).
            let mut u8a =
                unsafe { Uint8Array::from_napi_value(env.raw(), view) }.map_err(|_| bad())?;
            // SAFETY: the address only; the view is pinned below until the completion.
            let ptr = unsafe { u8a.as_mut().as_mut_ptr() };
            let size = std::mem::size_of::<kaio_core::sys::Statx>();
            let align = std::mem::align_of::<kaio_core::sys::Statx>();
            if u8a.len() < size || !(ptr as usize).is_multiple_of(align) {
                return Err(bad());
            }
            // Large enough and aligned (checked above); only the kernel (or libc's statx)
            // writes there, and nothing on the Rust side makes a reference to it.
            #[allow(clippy::cast_ptr_alignment)]
            let buf = ptr.cast::<kaio_core::sys::Statx>();
            // SAFETY: `buf` stays valid until the completion: the view is pinned (below) until
            // its completion leaves native code, and a dropped backend waits for the kernel.
            let req = unsafe { Request::statx(user, fd, path, a, b, buf) };
            let hot = hot(handle).ok_or_else(|| closed(env.raw()))?;
            return push_pinned(env, &hot, id, &[view], req);
        }
        _ => {
            return Err(throw_coded(
                env.raw(),
                "ERR_INVALID_ARG_VALUE",
                &format!("kaio: unknown path op {op}"),
                None,
            ))
        }
    };
    push(env, handle, req)
}

/// Queues a whole-file write on context `handle` (`Op::WriteFile`): `path` opened with `flags`
/// and `mode`, all of `data` written, fsynced if `sync`, closed; on a worker on every engine.
/// `data` is pinned until the completion.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn ctx_write_file(
    env: Env,
    handle: u32,
    id: u32,
    path: String,
    flags: i32,
    mode: u32,
    data: Unknown<'_>,
    sync: bool,
) -> Result<()> {
    let path = c_path(env, path, "path")?;
    let view = data.raw();
    // SAFETY: a value of this env, converted on its JS thread (refused unless a Uint8Array).
    let mut u8a = unsafe { Uint8Array::from_napi_value(env.raw(), view) }.map_err(|_| {
        throw_coded(
            env.raw(),
            "ERR_INVALID_ARG_TYPE",
            "kaio: bad arguments to a native call",
            None,
        )
    })?;
    // SAFETY: the address only; the view is pinned below until the completion.
    let ptr = unsafe { u8a.as_mut().as_mut_ptr() }.cast_const();
    let hot = hot(handle).ok_or_else(|| closed(env.raw()))?;
    // SAFETY: the view is pinned (a reference held by the binding) until its completion, and
    // a dropped backend waits for its workers.
    let req =
        unsafe { Request::write_file(u64::from(id), path, flags, mode, (ptr, u8a.len()), sync) };
    push_pinned(env, &hot, id, &[view], req)
}

/// Queues a whole-file copy on context `handle` (`Op::CopyFile`: libuv's copyfile on a
/// worker, `mode` being node's `COPYFILE_*` flags).
#[napi]
pub fn ctx_copy_file(
    env: Env,
    handle: u32,
    id: u32,
    src: String,
    dst: String,
    mode: i32,
) -> Result<()> {
    let src = c_path(env, src, "src")?;
    let dst = c_path(env, dst, "dest")?;
    push(
        env,
        handle,
        Request::new(u64::from(id), -1, 0, Op::CopyFile { src, dst, mode }),
    )
}

/// Queues descriptor op `op` on context `handle`: `close` of `fd`; `ftruncate` of `fd` to
/// `len` bytes; `fallocate` (`a` = mode) or `fadvise` (`a` = advice) of `len` bytes at
/// `offset`.
#[napi]
#[allow(clippy::too_many_arguments)] // one flat call per request, as the driver makes it
pub fn ctx_fd(
    env: Env,
    handle: u32,
    id: u32,
    op: u32,
    fd: i32,
    a: i32,
    offset: i64,
    len: i64,
) -> Result<()> {
    let op = match op {
        OP_CLOSE => Op::Close,
        OP_FTRUNCATE => Op::Ftruncate { len },
        OP_FALLOCATE => Op::Fallocate {
            mode: a,
            offset,
            len,
        },
        OP_FADVISE => Op::Fadvise {
            offset,
            len,
            advice: a,
        },
        _ => {
            return Err(throw_coded(
                env.raw(),
                "ERR_INVALID_ARG_VALUE",
                &format!("kaio: unknown descriptor op {op}"),
                None,
            ))
        }
    };
    push(env, handle, Request::new(u64::from(id), fd, 0, op))
}

/// Keeps the event loop alive (`true`) while context `handle` has requests pending, or lets
/// it exit. A destroyed context holds nothing, so this is then a no-op.
#[napi]
pub fn ctx_set_ref(env: Env, handle: u32, referenced: bool) -> Result<()> {
    match hot(handle) {
        Some(hot) => hot.set_ref(env, referenced),
        None => Ok(()),
    }
}

fn options(req: &mut Request, flags: i32, priority: i32) {
    req.rw_flags = flags;
    req.priority = (priority >= 0).then_some(priority as u16);
}

/// Whether contexts made with `loop_watch` would have Node's event loop watch their
/// completions (`uv_poll`). Only call it where libuv may be used at all (not on Bun).
#[napi]
pub fn loop_watch_available(env: Env) -> bool {
    #[cfg(target_os = "linux")]
    return uvpoll::available(env.raw());
    #[cfg(not(target_os = "linux"))]
    {
        let _ = env;
        false
    }
}

/// A probe as the `[available, reason, kernel release]` triple JavaScript receives.
#[cfg(target_os = "linux")]
fn probe_triple(p: &kaio_core::probe::Probe) -> (bool, String, String) {
    (p.available, p.reason.clone(), p.kernel.clone())
}

/// `io_uring` availability: `[available, reason, kernel release]`.
#[napi]
pub fn probe_uring() -> (bool, String, String) {
    #[cfg(target_os = "linux")]
    return probe_triple(kaio_core::uring::probe());
    #[cfg(not(target_os = "linux"))]
    (false, "io_uring exists only on Linux".into(), String::new())
}

/// Kernel AIO availability: `[available, reason, kernel release]`.
#[napi]
pub fn probe() -> (bool, String, String) {
    #[cfg(target_os = "linux")]
    return probe_triple(kaio_core::aio::probe());
    #[cfg(not(target_os = "linux"))]
    (
        false,
        "kernel AIO exists only on Linux".into(),
        String::new(),
    )
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
