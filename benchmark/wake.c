// Does waking on an eventfd through epoll (what kaio does: the kernel signals the eventfd named
// by IOCB_FLAG_RESFD, Node's event loop is in epoll_wait) cost more than fio's blocking
// io_getevents(min_nr = 1)? O_DIRECT 4 KiB random reads at depth 1, one thread, no Node.
//
//   gcc -O2 -o /tmp/wake benchmark/wake.c
//   /tmp/wake FILE 0   # io_submit, then io_getevents blocking (fio libaio's shape)
//   /tmp/wake FILE 1   # io_submit, then epoll_wait on the eventfd, read it, io_getevents(0)
//   taskset -c N ...   # pin to a CPU: the one taking the disk's interrupts, or not
//
// FILE must be at least 64 MiB on a filesystem that supports O_DIRECT.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: wake FILE 0|1\n");
    return 2;
  }
  int mode = atoi(argv[2]);
  int fd = open(argv[1], O_RDONLY | O_DIRECT);
  if (fd < 0) {
    perror("open");
    return 1;
  }
  void *buf;
  if (posix_memalign(&buf, 4096, 4096) != 0) return 1;
  int efd = eventfd(0, EFD_NONBLOCK);
  int ep = epoll_create1(0);
  struct epoll_event e = {.events = EPOLLIN, .data.fd = efd};
  epoll_ctl(ep, EPOLL_CTL_ADD, efd, &e);
  aio_context_t ctx = 0;
  if (syscall(SYS_io_setup, 64, &ctx) != 0) {
    perror("io_setup");
    return 1;
  }
  struct io_event ev[16];
  struct timespec zero = {0, 0};
  const int n = 30000;
  unsigned s = 7;
  double t = now();
  for (int i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    struct iocb cb;
    memset(&cb, 0, sizeof cb);
    cb.aio_fildes = fd;
    cb.aio_lio_opcode = IOCB_CMD_PREAD;
    cb.aio_buf = (uint64_t)(uintptr_t)buf;
    cb.aio_nbytes = 4096;
    cb.aio_offset = (uint64_t)(s % 16384) * 4096;
    if (mode == 1) {
      cb.aio_flags = IOCB_FLAG_RESFD;
      cb.aio_resfd = efd;
    }
    struct iocb *p = &cb;
    if (syscall(SYS_io_submit, ctx, 1, &p) != 1) {
      perror("io_submit");
      return 1;
    }
    if (mode == 0) {
      syscall(SYS_io_getevents, ctx, 1, 16, ev, NULL);
    } else {
      long got = 0;
      while (got == 0) {
        struct epoll_event out;
        uint64_t v;
        epoll_wait(ep, &out, 1, -1);
        if (read(efd, &v, 8) < 0) { /* spurious */ }
        got = syscall(SYS_io_getevents, ctx, 0, 16, ev, &zero);
      }
    }
  }
  printf("%s: %.1f us per read\n", mode ? "epoll + eventfd" : "io_getevents blocking", (now() - t) / n / 1000);
  return 0;
}
