//! The thread pool's capability answer, shaped as [`crate::probe::Probe`] like the kernel
//! engines': always available (it needs only threads and the positional system calls every
//! supported platform has), so it is the fallback when the kernel engines are not.

use std::sync::OnceLock;

use crate::probe::Probe;

/// The probe result, computed once per process: available, with the kernel release where
/// one can be read (for diagnostics).
pub fn probe() -> &'static Probe {
    static P: OnceLock<Probe> = OnceLock::new();
    P.get_or_init(|| Probe {
        available: true,
        reason: String::new(),
        kernel: crate::sys::kernel_release().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_available() {
        let p = probe();
        assert!(std::ptr::eq(p, probe()));
        assert!(p.available && p.reason.is_empty());
    }
}
