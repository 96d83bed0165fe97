"""A native thread pool for split launches: persistent pthreads that run a kernel's work units without the GIL.

Waking Python threads costs tens of microseconds per launch (a lock hand-off, then the GIL, then a ctypes
call in each thread), more than a whole kernel of a few hundred thousand operations takes.  This pool lives in
C: a kernel's ``NAME_par`` entry packs its arguments and calls :c:func:`tg_pool_run` (whose address it gets as an
argument), which publishes the job, runs work units on the calling thread, and returns when every unit is done.
The workers and the caller claim ``chunk`` units at a time from one shared counter, so a core slowed by another
process leaves its share to the others, and the caller never waits for a worker that wakes late: it waits only
for units that someone has claimed.

A worker that finds no job spins for ``TG_CLANG_SPIN_US`` microseconds (default 1000, about the time between
launches of a training step's larger kernels, so that they find it awake) and then sleeps on a condition
variable.  While it spins it yields the core every few dozen checks, so a thread with work on that core (the
caller's, another process's) runs first.  Jobs are serialised: a launch that finds the pool busy (another Python
thread's launch) runs on its own thread.  A forked child starts its own workers.

The job's counter and its generation share one 64-bit word, so a worker that read a stale job can never claim
a unit of it: a finished job's counter is set past every possible end before the next job is written.
"""

from __future__ import annotations

import ctypes
import os
import threading

from tg_clang.compiler import KernelCache, default_flags

POOL_SOURCE = r"""
/* tg-clang thread pool */
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <sched.h>
#include <signal.h>

typedef void (*tg_task)(void *const *args, int32_t start, int32_t end);

#define TG_MAX_WORKERS 255
static uint64_t tg_state;               /* generation << 32 | next unit of the current job */
static tg_task tg_job_fn;
static void *const *tg_job_args;
static int32_t tg_job_end, tg_job_chunk;
static int32_t tg_done;                 /* units of the current job finished */
static int32_t tg_sleepers;
static int32_t tg_workers;              /* workers started in this process */
static int64_t tg_spin_ns = 1000000;
static pthread_mutex_t tg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tg_cv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t tg_run_mu = PTHREAD_MUTEX_INITIALIZER;
static int tg_atfork_done;

#if defined(__x86_64__) || defined(__i386__)
#define TG_PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define TG_PAUSE() __asm__ __volatile__("yield")
#else
#define TG_PAUSE() ((void)0)
#endif

static int64_t tg_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint32_t tg_gen(uint64_t s) { return (uint32_t)(s >> 32); }

/* Claim and run chunks of job `gen` until none is left (or a newer job replaced it). */
static void tg_work(uint32_t gen, tg_task fn, void *const *args, int32_t end, int32_t chunk) {
  uint64_t s = __atomic_load_n(&tg_state, __ATOMIC_ACQUIRE);
  for (;;) {
    if (tg_gen(s) != gen) return;
    int64_t i = (int32_t)(uint32_t)s;
    if (i >= end) return;
    int64_t j = i + chunk < end ? i + chunk : end;
    if (__atomic_compare_exchange_n(&tg_state, &s, ((uint64_t)gen << 32) | (uint32_t)j, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
      fn(args, (int32_t)i, (int32_t)j);
      __atomic_fetch_add(&tg_done, (int32_t)(j - i), __ATOMIC_RELEASE);
      s = __atomic_load_n(&tg_state, __ATOMIC_ACQUIRE);
    }
  }
}

static void tg_wait_for_job(uint32_t seen) {
  int64_t limit = __atomic_load_n(&tg_spin_ns, __ATOMIC_RELAXED), start = limit > 0 ? tg_now_ns() : 0;
  for (int n = 1; limit > 0; n++) {
    if (tg_gen(__atomic_load_n(&tg_state, __ATOMIC_ACQUIRE)) != seen) return;
    TG_PAUSE();
    if ((n & 31) == 0) {
      sched_yield();  /* a thread that has work on this core (the caller's, another process's) goes first */
      if (tg_now_ns() - start > limit) break;
    }
  }
  pthread_mutex_lock(&tg_mu);
  __atomic_fetch_add(&tg_sleepers, 1, __ATOMIC_SEQ_CST);
  while (tg_gen(__atomic_load_n(&tg_state, __ATOMIC_SEQ_CST)) == seen) pthread_cond_wait(&tg_cv, &tg_mu);
  __atomic_fetch_sub(&tg_sleepers, 1, __ATOMIC_SEQ_CST);
  pthread_mutex_unlock(&tg_mu);
}

static void *tg_worker(void *arg) {
  uint32_t seen = (uint32_t)(uintptr_t)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, 0);  /* signals (Ctrl-C) go to the Python threads */
  for (;;) {
    uint64_t s = __atomic_load_n(&tg_state, __ATOMIC_ACQUIRE);
    if (tg_gen(s) == seen) { tg_wait_for_job(seen); continue; }
    seen = tg_gen(s);
    tg_task fn = __atomic_load_n(&tg_job_fn, __ATOMIC_RELAXED);
    void *const *args = __atomic_load_n(&tg_job_args, __ATOMIC_RELAXED);
    int32_t end = __atomic_load_n(&tg_job_end, __ATOMIC_RELAXED);
    int32_t chunk = __atomic_load_n(&tg_job_chunk, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);  /* a newer job's fields seen here imply its predecessor's fence */
    tg_work(seen, fn, args, end, chunk);
  }
  return 0;
}

static void tg_after_fork_child(void) {  /* the workers did not survive the fork */
  tg_workers = 0;
  tg_sleepers = 0;
  pthread_mutex_init(&tg_mu, 0);
  pthread_cond_init(&tg_cv, 0);
  pthread_mutex_init(&tg_run_mu, 0);
}

void tg_pool_config(int64_t spin_ns) { __atomic_store_n(&tg_spin_ns, spin_ns, __ATOMIC_RELAXED); }

int32_t tg_pool_workers(void) { return __atomic_load_n(&tg_workers, __ATOMIC_RELAXED); }

/* Run units [0, end) of `fn` on `threads` threads (the caller's included), `chunk` units per claim. */
void tg_pool_run(tg_task fn, void *const *args, int32_t end, int32_t chunk, int32_t threads) {
  if (chunk < 1) chunk = 1;
  if (threads < 2 || end <= chunk || pthread_mutex_trylock(&tg_run_mu) != 0) { fn(args, 0, end); return; }
  if (!tg_atfork_done) { pthread_atfork(0, 0, tg_after_fork_child); tg_atfork_done = 1; }
  uint64_t s = __atomic_load_n(&tg_state, __ATOMIC_RELAXED);
  while (tg_workers < threads - 1 && tg_workers < TG_MAX_WORKERS) {
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int failed = pthread_create(&th, &attr, tg_worker, (void *)(uintptr_t)tg_gen(s));
    pthread_attr_destroy(&attr);
    if (failed) break;
    __atomic_store_n(&tg_workers, tg_workers + 1, __ATOMIC_RELAXED);
  }
  uint32_t gen = tg_gen(s) + 1;
  __atomic_store_n(&tg_job_fn, fn, __ATOMIC_RELAXED);
  __atomic_store_n(&tg_job_args, args, __ATOMIC_RELAXED);
  __atomic_store_n(&tg_job_end, end, __ATOMIC_RELAXED);
  __atomic_store_n(&tg_job_chunk, chunk, __ATOMIC_RELAXED);
  __atomic_store_n(&tg_done, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&tg_state, (uint64_t)gen << 32, __ATOMIC_SEQ_CST);  /* publish */
  if (__atomic_load_n(&tg_sleepers, __ATOMIC_SEQ_CST) > 0) {
    pthread_mutex_lock(&tg_mu);
    pthread_cond_broadcast(&tg_cv);
    pthread_mutex_unlock(&tg_mu);
  }
  tg_work(gen, fn, args, end, chunk);
  for (int n = 1; __atomic_load_n(&tg_done, __ATOMIC_ACQUIRE) < end; n++) {  /* units others are still running */
    TG_PAUSE();
    if ((n & 4095) == 0) sched_yield();
  }
  /* retire the job: its counter goes past any end, so a worker holding a stale copy claims nothing */
  __atomic_store_n(&tg_state, ((uint64_t)gen << 32) | 0x7fffffffu, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  pthread_mutex_unlock(&tg_run_mu);
}
"""


def spin_ns() -> int:
    """How long an idle worker spins before it sleeps (TG_CLANG_SPIN_US, microseconds; 0 sleeps at once)."""
    raw = os.environ.get("TG_CLANG_SPIN_US", "").strip()
    if not raw:
        return 1_000_000
    if not raw.isdigit():
        raise ValueError(f"environment variable TG_CLANG_SPIN_US={raw!r} must be a non-negative integer")
    return int(raw) * 1000


class NativePool:
    """The loaded pool library: ``run_address`` is what a kernel's ``NAME_par`` entry calls."""

    def __init__(self, library: ctypes.CDLL, spin: int):
        self.library = library
        self.run_address = ctypes.c_void_p(ctypes.cast(library.tg_pool_run, ctypes.c_void_p).value)
        library.tg_pool_config.argtypes = [ctypes.c_int64]
        library.tg_pool_config.restype = None
        library.tg_pool_workers.restype = ctypes.c_int32
        library.tg_pool_config(spin)

    def workers(self) -> int:
        """Worker threads started in this process so far."""
        return int(self.library.tg_pool_workers())


_lock = threading.Lock()
_loaded: list[NativePool | None] = []


def _load() -> NativePool | None:
    if os.environ.get("TG_CLANG_NATIVE_POOL", "1") == "0":
        return None
    spin = spin_ns()
    try:
        library, _ = KernelCache(flags=(*default_flags(), "-pthread")).load(POOL_SOURCE, "tg_pool_run")
    except Exception:  # noqa: BLE001 - no native pool: the runtime falls back to Python threads
        return None
    return NativePool(library, spin)


def build_in_background() -> None:
    """Start building the native pool in a thread (once per process; the runtime calls this after a launch that
    split across Python threads), so that no launch waits for its compile: until it is built, launches split across
    Python threads."""
    global _building
    if _loaded or _building is not None:
        return
    with _lock:
        if _building is None:
            _building = threading.Thread(target=native_pool, name="tg-clang-pool-build", daemon=True)
            _building.start()


_building: threading.Thread | None = None


def _after_fork_in_child() -> None:
    """In a child forked while this process built the pool: the build's thread is not in the child, and the lock it
    may have held stays held there: a fresh lock, and no build under way (the child's next split launch starts its
    own, unless the pool was loaded before the fork)."""
    global _lock, _building
    _lock = threading.Lock()
    if not _loaded:
        _building = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def wait_for_background_build() -> None:
    """Wait until a build that :func:`build_in_background` started has ended (what counts the compiler's commands
    must not see that build's)."""
    building = _building
    if building is not None:
        building.join()


def native_pool(wait: bool = True) -> NativePool | None:
    """The native pool (compiled into the kernel cache on first use; TG_CLANG_NATIVE_POOL=0 at that moment says
    not to), or None where it cannot be built; without ``wait``, also None until it is built (it is then neither
    built here nor waited for: see :func:`build_in_background`)."""
    if _loaded:
        return _loaded[0]
    if not wait:
        return None
    with _lock:
        if not _loaded:
            _loaded.append(_load())
        return _loaded[0]
