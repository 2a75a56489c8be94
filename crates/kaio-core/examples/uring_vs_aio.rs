//! Times 4 KiB page-cache reads at depth 1 and 32 through `UringContext` and `AioContext`,
//! both loop-driven (push, `flush`, then `collect` when the eventfd fires, all on this thread),
//! and prints reads per second.
//!
//! `cargo run --release -p kaio-core --example uring_vs_aio [seconds-per-case] [aio|uring]`
//!
//! Also prints how many flushes ran and after how many of them the eventfd was left
//! signalled although the flush had returned every completion (an event loop would wake once
//! more for nothing).

#[cfg(target_os = "linux")]
fn main() {
    use std::os::fd::AsRawFd;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use kaio_core::{Backend, Mailbox, Request};

    const BLOCK: usize = 4096;
    const FILE: usize = 64 << 20;
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let f = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut &f, &vec![7u8; FILE]).unwrap();
    let only = std::env::args().nth(2);
    let blocks = (FILE / BLOCK) as u64;
    let fd = f.as_raw_fd();

    for depth in [1usize, 32] {
        for engine in ["aio", "uring"] {
            if only.as_deref().is_some_and(|o| o != engine) {
                continue;
            }
            let mb = Arc::new(Mailbox::with_eventfd().unwrap());
            let b = match engine {
                "aio" => Backend::linux(depth as u32, mb.clone()).unwrap(),
                _ => Backend::uring(
                    depth as u32,
                    mb.clone(),
                    kaio_core::uring::UringOptions::default(),
                )
                .unwrap(),
            };
            let efd = mb.eventfd().unwrap();
            let mut bufs = vec![0u8; BLOCK * depth];
            let base = bufs.as_mut_ptr();
            let mut free: Vec<usize> = (0..depth).collect();
            let mut next = 0u64;
            let mut done = 0u64;
            let mut wakes = 0u64;
            let mut flushes = 0u64;
            let mut spurious = 0u64;
            let start = Instant::now();
            let until = start + Duration::from_secs_f64(secs);
            let mut outstanding = 0usize;
            loop {
                let stop = Instant::now() >= until;
                if !stop {
                    while let Some(slot) = free.pop() {
                        let off = ((next * 7919) % blocks) as i64 * BLOCK as i64;
                        next += 1;
                        // SAFETY: slot `slot` of `bufs` is used by this one request until its
                        // completion comes back below; `bufs` outlives the backend.
                        b.push(unsafe {
                            Request::read(slot as u64, fd, off, base.add(slot * BLOCK), BLOCK)
                        });
                        outstanding += 1;
                    }
                }
                let mut got = b.flush();
                flushes += 1;
                if got.len() == outstanding {
                    let mut p = libc::pollfd {
                        fd: efd,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd, no wait.
                    if unsafe { libc::poll(&raw mut p, 1, 0) } == 1 {
                        spurious += 1;
                        mb.clear_signal();
                    }
                }
                if got.is_empty() && outstanding > 0 {
                    let mut p = libc::pollfd {
                        fd: efd,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&raw mut p, 1, 1000) };
                    mb.clear_signal();
                    wakes += 1;
                    got = b.collect();
                }
                for c in got {
                    assert_eq!(c.res, BLOCK as i64);
                    free.push(c.user as usize);
                    outstanding -= 1;
                    done += 1;
                }
                if stop && outstanding == 0 {
                    break;
                }
            }
            let el = start.elapsed().as_secs_f64();
            println!(
                "{engine:>5} depth {depth:>2}: {:>9.0} reads/s ({done} reads, {flushes} flushes, \
                 {wakes} eventfd waits, eventfd left signalled after {spurious} flushes)",
                done as f64 / el
            );
            drop(b);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {}
