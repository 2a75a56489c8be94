//! One cached capability check for the kernel AIO backend (like libuv's
//! `uv__kernel_version` gate): kernel >= 4.18 (FSYNC/FDSYNC/POLL opcodes) and a successful
//! `io_setup(1)` (ENOSYS under qemu-user, gVisor, some seccomp profiles).

use std::sync::OnceLock;

use crate::probe::{errno_name, parse_release, Probe};

/// Minimum kernel: 4.18 added `IOCB_CMD_FSYNC`/`FDSYNC` for files and `IOCB_CMD_POLL`.
pub const MIN_KERNEL: (u32, u32) = (4, 18);

fn run() -> Probe {
    let kernel = crate::sys::kernel_release().unwrap_or_default();
    let fail = |reason: String, kernel: String| Probe {
        available: false,
        reason,
        kernel,
    };
    match parse_release(&kernel) {
        Some(v) if v >= MIN_KERNEL => {}
        Some((a, b)) => {
            return fail(
                format!("kernel {a}.{b} is older than 4.18 (no AIO fsync/poll)"),
                kernel,
            )
        }
        None => return fail(format!("cannot parse kernel release {kernel:?}"), kernel),
    }
    match crate::sys::io_setup(1) {
        Ok(ctx) => {
            // SAFETY: fresh context, never used.
            let _ = unsafe { crate::sys::io_destroy(ctx) };
            Probe {
                available: true,
                reason: String::new(),
                kernel,
            }
        }
        Err(e) => fail(
            format!(
                "io_setup failed: {}",
                errno_name(e.raw_os_error().unwrap_or(0))
            ),
            kernel,
        ),
    }
}

/// The probe result, computed once per process. `KAIO_DISABLE_LINUX_AIO=1` forces
/// "unavailable" (a kill switch, and a way to test the fallback).
pub fn probe() -> &'static Probe {
    static P: OnceLock<Probe> = OnceLock::new();
    P.get_or_init(|| {
        if std::env::var_os("KAIO_DISABLE_LINUX_AIO").is_some_and(|v| v != "0" && !v.is_empty()) {
            return Probe {
                available: false,
                reason: "disabled by KAIO_DISABLE_LINUX_AIO".into(),
                kernel: String::new(),
            };
        }
        run()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_at_4_18() {
        assert!(parse_release("4.17.0").unwrap() < MIN_KERNEL);
        assert!(parse_release("5.0.0").unwrap() >= MIN_KERNEL);
    }

    #[test]
    fn probe_is_cached_and_available_here() {
        let p = probe();
        assert!(std::ptr::eq(p, probe()));
        if std::env::var_os("KAIO_DISABLE_LINUX_AIO").is_none() {
            assert!(p.available, "{}", p.reason);
        }
    }
}
