//! The cached capability answer for the `io_uring` engine, shaped as [`crate::probe::Probe`].
//!
//! Gates: kernel >= 5.6, which added `IORING_OP_READ`/`WRITE` (non-vectored reads and writes)
//! and `IORING_REGISTER_PROBE` (the per-opcode check the engine's fallback relies on); and a
//! trial `io_uring_setup(1)`. Any setup error makes the engine unavailable with the reason:
//! EPERM (Docker's seccomp profile, `kernel.io_uring_disabled`), ENOSYS (gVisor, emulators,
//! kernels built without `io_uring`), ENOMEM (rings charged to `RLIMIT_MEMLOCK` before 5.12).

use std::ffi::OsString;
use std::sync::OnceLock;

use crate::probe::{errno_name, parse_release, Probe};

/// Minimum kernel for the `io_uring` engine (see the module docs).
pub const MIN_KERNEL: (u32, u32) = (5, 6);

/// The kill switch: set to anything but `0` or empty, the engine reports itself unavailable.
pub const DISABLE_ENV: &str = "KAIO_DISABLE_IO_URING";

/// The reason given when `io_uring_setup` fails with `errno`.
#[must_use]
pub fn setup_failure(errno: i32) -> String {
    format!("io_uring_setup failed: {}", errno_name(errno))
}

/// Evaluates the gates; `disable` is the kill switch's value.
fn evaluate(disable: Option<OsString>, kernel: String) -> Probe {
    let fail = |reason: String, kernel: String| Probe {
        available: false,
        reason,
        kernel,
    };
    if disable.is_some_and(|v| v != "0" && !v.is_empty()) {
        return fail(format!("disabled by {DISABLE_ENV}"), kernel);
    }
    match parse_release(&kernel) {
        Some(v) if v >= MIN_KERNEL => {}
        Some((a, b)) => {
            return fail(
                format!(
                    "kernel {a}.{b} is older than 5.6 (no IORING_OP_READ/WRITE, no opcode probe)"
                ),
                kernel,
            )
        }
        None => return fail(format!("cannot parse kernel release {kernel:?}"), kernel),
    }
    match io_uring::IoUring::new(1) {
        Ok(ring) => {
            drop(ring);
            Probe {
                available: true,
                reason: String::new(),
                kernel,
            }
        }
        Err(e) => fail(setup_failure(e.raw_os_error().unwrap_or(0)), kernel),
    }
}

/// The probe result, computed once per process (`KAIO_DISABLE_IO_URING=1` forces
/// "unavailable", reason `disabled by KAIO_DISABLE_IO_URING`).
pub fn probe() -> &'static Probe {
    static P: OnceLock<Probe> = OnceLock::new();
    P.get_or_init(|| {
        evaluate(
            std::env::var_os(DISABLE_ENV),
            crate::sys::kernel_release().unwrap_or_default(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_switch_and_reasons() {
        let p = evaluate(Some("1".into()), "6.18.0".into());
        assert!(!p.available);
        assert_eq!(p.reason, "disabled by KAIO_DISABLE_IO_URING");
        let p = evaluate(Some("0".into()), "5.4.0-generic".into());
        assert!(!p.available);
        assert!(
            p.reason.starts_with("kernel 5.4 is older than 5.6"),
            "{}",
            p.reason
        );
        assert_eq!(setup_failure(libc::EPERM), "io_uring_setup failed: EPERM");
        assert_eq!(setup_failure(libc::ENOSYS), "io_uring_setup failed: ENOSYS");
        assert_eq!(setup_failure(libc::ENOMEM), "io_uring_setup failed: ENOMEM");
    }

    #[test]
    fn probe_is_cached_and_available_here() {
        let p = probe();
        assert!(std::ptr::eq(p, probe()));
        if std::env::var_os(DISABLE_ENV).is_none() {
            assert!(p.available, "{}", p.reason);
            assert!(p.reason.is_empty());
        }
    }
}
