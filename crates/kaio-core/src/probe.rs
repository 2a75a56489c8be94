//! What every engine's capability check shares: the answer's shape ([`Probe`]), kernel
//! release parsing and errno names. Each engine keeps its own cached check, with its gates
//! and reasons, in its folder: [`crate::aio::probe()`] (kernel AIO),
//! [`crate::uring::probe()`] (`io_uring`), [`crate::pool::probe()`] (the thread pool).

/// Why an engine can or cannot be used here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub available: bool,
    /// Empty when available; otherwise e.g. `io_setup failed: ENOSYS`.
    pub reason: String,
    pub kernel: String,
}

/// Parses the leading `major.minor` of a kernel release string.
#[must_use]
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// The name of an errno, for diagnostics (`ENOSYS`), or `errno N`.
#[must_use]
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::ENOSYS => "ENOSYS",
        libc::EAGAIN => "EAGAIN",
        libc::EPERM => "EPERM",
        libc::ENOMEM => "ENOMEM",
        libc::EINVAL => "EINVAL",
        libc::EFAULT => "EFAULT",
        libc::EACCES => "EACCES",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::EBADF => "EBADF",
        libc::EIO => "EIO",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        _ => return format!("errno {errno}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_releases() {
        assert_eq!(parse_release("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_release("4.9.337"), Some((4, 9)));
        assert_eq!(parse_release("garbage"), None);
    }

    #[test]
    fn names_errnos() {
        assert_eq!(errno_name(libc::ENOSYS), "ENOSYS");
        assert_eq!(errno_name(12345), "errno 12345");
    }
}
