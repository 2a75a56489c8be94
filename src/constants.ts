// Constants for operation options: RWF_* flags, POLL*/EPOLL* event bits, fallocate modes,
// fadvise advice, I/O priorities.

/** `RWF_HIPRI`: high-priority (polled) request; kernel AIO accepts and ignores it for files. */
export const RWF_HIPRI = 0x01
/** `RWF_DSYNC`: per-request O_DSYNC. */
export const RWF_DSYNC = 0x02
/** `RWF_SYNC`: per-request O_SYNC. */
export const RWF_SYNC = 0x04
/** `RWF_NOWAIT`: fail with EAGAIN instead of blocking (EOPNOTSUPP where the file cannot honour it). */
export const RWF_NOWAIT = 0x08
/** `RWF_APPEND`: per-request O_APPEND (the offset is ignored). */
export const RWF_APPEND = 0x10

/** poll(2) event bits (`<poll.h>` on Linux). */
export const POLLIN = 0x001
export const POLLPRI = 0x002
export const POLLOUT = 0x004
export const POLLERR = 0x008
export const POLLHUP = 0x010
export const POLLNVAL = 0x020
export const POLLRDNORM = 0x040
export const POLLRDBAND = 0x080
export const POLLWRNORM = 0x100
export const POLLWRBAND = 0x200
export const POLLMSG = 0x400
export const POLLRDHUP = 0x2000

/** epoll event bits (same values as POLL* for the shared ones; `<sys/epoll.h>`). */
export const EPOLLIN = 0x001
export const EPOLLPRI = 0x002
export const EPOLLOUT = 0x004
export const EPOLLERR = 0x008
export const EPOLLHUP = 0x010
export const EPOLLRDNORM = 0x040
export const EPOLLRDBAND = 0x080
export const EPOLLWRNORM = 0x100
export const EPOLLWRBAND = 0x200
export const EPOLLMSG = 0x400
export const EPOLLRDHUP = 0x2000

// fallocate(2) modes (`linux/falloc.h`); 0 allocates and grows the file.
/** `FALLOC_FL_KEEP_SIZE`: allocate past the end without changing the file size. */
export const FALLOC_FL_KEEP_SIZE = 0x01
/** `FALLOC_FL_PUNCH_HOLE`: free the range (reads back as zeros); needs `FALLOC_FL_KEEP_SIZE`. */
export const FALLOC_FL_PUNCH_HOLE = 0x02
/** `FALLOC_FL_ZERO_RANGE`: zero the range (allocated, without writing the data). */
export const FALLOC_FL_ZERO_RANGE = 0x10

/** posix_fadvise(2) advice (`<fcntl.h>` on Linux). */
export const POSIX_FADV_NORMAL = 0
export const POSIX_FADV_RANDOM = 1
export const POSIX_FADV_SEQUENTIAL = 2
export const POSIX_FADV_WILLNEED = 3
export const POSIX_FADV_DONTNEED = 4
export const POSIX_FADV_NOREUSE = 5

/** I/O scheduling classes (`linux/ioprio.h`). RT needs CAP_SYS_ADMIN or CAP_SYS_NICE. */
export const IOPRIO_CLASS_NONE = 0
export const IOPRIO_CLASS_RT = 1
export const IOPRIO_CLASS_BE = 2
export const IOPRIO_CLASS_IDLE = 3

import { outOfRange } from './errors'
import { validateInt } from './validate'

/** An I/O priority value: `class << 13 | level` (level 0, highest, to 7), for `options.priority`. */
export function ioprio(ioClass: number, level = 0): number {
  validateInt(ioClass, 'class', IOPRIO_CLASS_NONE, IOPRIO_CLASS_IDLE)
  validateInt(level, 'level', 0, 7)
  if (ioClass === IOPRIO_CLASS_NONE && level !== 0) throw outOfRange('level', '0 for IOPRIO_CLASS_NONE', level)
  return (ioClass << 13) | level
}
