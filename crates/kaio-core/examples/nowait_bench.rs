//! 4 KiB random buffered reads of a 1 GiB file: kernel AIO with and without `RWF_NOWAIT`,
//! against the thread pool alone, cold (page cache dropped) and hot, at depth 1 and 32. Driven
//! as the Node binding drives it: an eventfd mailbox watched with `poll`, `flush` after
//! pushing, `collect` when woken. Besides reads per second it prints how long the driving
//! thread spent inside single `flush`/`collect` calls (p99 and max): time the JavaScript
//! thread would be blocked, the event-loop delay kaio adds.
//!
//! `cargo run --release -p kaio-core --example nowait_bench [-- FILE]` (root, for
//! `/proc/sys/vm/drop_caches`; default file `/tmp/kaio-nowait-bench.dat`, created if missing).

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kaio_core::aio::AioContext;
use kaio_core::pool::Pool;
use kaio_core::{Backend, Completion, Mailbox, Request};

const FILE_SIZE: u64 = 1 << 30;
const BS: usize = 4096;

struct Run {
    iops: f64,
    p99_us: f64,
    max_us: f64,
    handed_off: u64,
}

fn drop_caches() {
    // SAFETY: sync(2) takes no arguments.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop_caches (run as root)");
}

fn warm(path: &str) {
    let mut f = std::fs::File::open(path).unwrap();
    std::io::copy(&mut f, &mut std::io::sink()).unwrap();
}

fn ensure_file(path: &str) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == FILE_SIZE) {
        return;
    }
    let mut f = std::fs::File::create(path).unwrap();
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8 | 1).collect();
    for _ in 0..FILE_SIZE >> 20 {
        std::io::Write::write_all(&mut f, &chunk).unwrap();
    }
    f.sync_all().unwrap();
}

/// `n` distinct random block offsets (xorshift; a partial Fisher-Yates over the blocks).
fn offsets(n: usize, seed: u64) -> Vec<i64> {
    let blocks = (FILE_SIZE / BS as u64) as usize;
    let mut idx: Vec<u32> = (0..blocks as u32).collect();
    let mut x = seed | 1;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = i + (x % (blocks - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx[..n].iter().map(|&b| i64::from(b) * BS as i64).collect()
}

fn run(backend: &Backend, mailbox: &Mailbox, fd: i32, offs: &[i64], depth: usize) -> Run {
    let efd = mailbox.eventfd().unwrap();
    let mut bufs = vec![0u8; depth * BS];
    let base = bufs.as_mut_ptr();
    let mut free: Vec<u64> = (0..depth as u64).collect();
    let mut calls: Vec<Duration> = Vec::with_capacity(offs.len() * 2);
    let (mut next, mut done) = (0, 0);
    let t0 = Instant::now();
    let settle = |cs: Vec<Completion>, free: &mut Vec<u64>, done: &mut usize| {
        for c in cs {
            assert_eq!(c.res, BS as i64, "{c:?}");
            free.push(c.user);
            *done += 1;
        }
    };
    while done < offs.len() {
        while next < offs.len() {
            let Some(slot) = free.pop() else { break };
            // SAFETY: each slot's block of `bufs` is used by one request at a time and
            // outlives the run (every request completes before `run` returns).
            let r =
                unsafe { Request::read(slot, fd, offs[next], base.add(slot as usize * BS), BS) };
            backend.push(r);
            next += 1;
        }
        let t = Instant::now();
        let cs = backend.flush();
        calls.push(t.elapsed());
        let got = !cs.is_empty();
        settle(cs, &mut free, &mut done);
        if got || done == offs.len() {
            continue;
        }
        let mut p = libc::pollfd {
            fd: efd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&raw mut p, 1, 5000) };
        mailbox.clear_signal();
        let t = Instant::now();
        let cs = backend.collect();
        calls.push(t.elapsed());
        settle(cs, &mut free, &mut done);
    }
    let wall = t0.elapsed();
    calls.sort_unstable();
    let p99 = calls[(calls.len() * 99 / 100).min(calls.len() - 1)];
    let handed_off = match backend {
        Backend::Linux(c) => c.handed_off(),
        _ => 0,
    };
    Run {
        iops: offs.len() as f64 / wall.as_secs_f64(),
        p99_us: p99.as_secs_f64() * 1e6,
        max_us: calls.last().unwrap().as_secs_f64() * 1e6,
        handed_off,
    }
}

fn make(kind: &str) -> (Backend, Arc<Mailbox>) {
    let mailbox = Arc::new(Mailbox::with_eventfd().unwrap());
    let b = match kind {
        "linux" | "linux+nowait" => {
            let c = AioContext::new(128, mailbox.clone()).unwrap();
            c.set_nowait(kind == "linux+nowait");
            Backend::Linux(c)
        }
        "pool4" => Backend::Thread(Pool::new(4, mailbox.clone()).unwrap()),
        _ => Backend::Thread(Pool::new(8, mailbox.clone()).unwrap()),
    };
    (b, mailbox)
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/kaio-nowait-bench.dat".into());
    ensure_file(&path);
    let f = std::fs::File::open(&path).unwrap();
    let kinds = ["linux", "linux+nowait", "pool8", "pool4"];
    println!("workload      engine        reads/s   call p99 us  call max us  handed off");
    for (cold, depth, n) in [
        (true, 1, 3_000),
        (true, 32, 20_000),
        (false, 1, 100_000),
        (false, 32, 200_000),
    ] {
        if !cold {
            warm(&path);
        }
        for (k, kind) in kinds.iter().enumerate() {
            // Fresh offsets per run: a cold run never finds another run's pages.
            let offs = offsets(n, 0x9e37_79b9 + k as u64 * 7919 + depth as u64);
            if cold {
                drop_caches();
            }
            let (b, m) = make(kind);
            let r = run(&b, &m, f.as_raw_fd(), &offs, depth);
            drop(b);
            println!(
                "{:<13} {:<13} {:>8.0} {:>12.0} {:>12.0} {:>11}",
                format!("{} d{depth}", if cold { "cold" } else { "hot" }),
                kind,
                r.iops,
                r.p99_us,
                r.max_us,
                r.handed_off
            );
        }
    }
}
