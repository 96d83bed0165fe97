"""The process group: rank, world size and local rank from MPI, and bounded collectives over host buffers.

Every collective is started non-blocking (``Iallreduce``, ``Ibcast``, ``Ibarrier``, ``Iallgatherv``) and
waited for by a loop that polls ``Test()``; between polls it looks for failure notices from other ranks
and gives up after ``TG_DIST_TIMEOUT`` seconds (default 300).  So a rank never waits forever:

* a rank that raises: :func:`init` installs an excepthook that prints the error, tells every other rank
  "rank R raised ..." on a control communicator, waits up to a second, then calls ``Comm.Abort``;
  the others raise :class:`DistributedError` naming rank R as soon as they poll (or are ended by the abort);
* a rank that leaves early (``sys.exit``, the end of its script): an atexit hook tells the others how
  many collectives it took part in; one still waiting for a collective that rank never joined raises
  at once, naming it;
* a rank that dies without a word (a signal such as SIGKILL, ``os._exit``, a crash): under MPICH's
  ``mpiexec`` (hydra), a watchdog process beside each rank (:mod:`tg.distributed._watchdog`) prints
  ``tg.distributed: rank R (pid P on HOST) died: killed by signal 9 (SIGKILL)`` and hydra ends every other
  rank at once (hydra alone names a PID, at times another rank's);
* a rank that hangs: the others raise after ``TG_DIST_TIMEOUT`` seconds, naming the collective and, after
  asking every rank where it waits (up to 2 s more), the ranks that did not answer or wait elsewhere.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np

from tg.distributed._mpi import MPI
from tg.nn import sync_norm
from tg.support.errors import TgError
from tg.support.helpers import getenv

_FAIL, _LEFT, _ASK, _ANSWER = 7701, 7702, 7703, 7704  # tags of the control messages
ASK_SECONDS = 2.0  # after a timeout: how long the other ranks have to say where they wait


class DistributedError(TgError, RuntimeError):
    """Ranks disagree (shapes, names) or one failed, left or hung; the message names the rank."""


@dataclass
class Group:
    """The initialised world: ``comm`` for data, ``control`` for failure notices (a duplicate of it)."""

    comm: Any
    control: Any
    rank: int
    world_size: int
    local_rank: int
    local_size: int
    host: str
    timeout: float
    collectives: int = 0  # collectives this rank has started (the same sequence on every rank)
    left: dict[int, int] = field(default_factory=dict)  # rank -> collectives it took part in before leaving
    allreduce_seconds: float = 0.0  # time spent waiting in gradient and tensor allreduces
    answers: dict[int, int] = field(default_factory=dict)  # rank -> the collective it waits in (after an _ASK)
    sending: list[Any] = field(default_factory=list)  # control messages on their way (kept until sent)
    watchdog: int | None = None  # the write end of the pipe to this rank's watchdog (a byte there: stay quiet)
    watchdog_process: subprocess.Popen[bytes] | None = None


_group: Group | None = None


def init(timeout: float | None = None) -> Group:
    """Join the MPI world this process was started in (``mpiexec -n N python ...``; one process alone is a
    world of 1).  Idempotent.  ``timeout`` (seconds) bounds every wait; default ``TG_DIST_TIMEOUT`` or 300."""
    global _group
    if _group is not None:
        return _group
    comm = MPI.COMM_WORLD
    local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    seconds = float(timeout if timeout is not None else getenv("TG_DIST_TIMEOUT", 300.0))
    if seconds <= 0:
        raise ValueError(f"tg.distributed: the timeout must be positive, got {seconds}")
    _group = Group(comm, comm.Dup(), comm.Get_rank(), comm.Get_size(), local.Get_rank(), local.Get_size(),
                   MPI.Get_processor_name(), seconds)
    local.Free()
    _start_watchdog(_group)
    sync_norm.set_collectives(sync_norm.Collectives(_group.rank, _group.world_size,
                                                    lambda array: all_reduce_array(array, "sum")))
    previous = sys.excepthook

    def excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        previous(kind, value, tb)  # the traceback, as without tg.distributed
        _abort_on_exception(kind, value)

    sys.excepthook = excepthook
    atexit.register(_announce_exit)
    return _group


def group() -> Group:
    if _group is None:
        raise DistributedError("tg.distributed is not initialised: call tg.distributed.init() first")
    return _group


def is_initialized() -> bool:
    return _group is not None


def get_rank() -> int:
    """This process's rank (0 when tg.distributed is not initialised)."""
    return _group.rank if _group is not None else 0


def get_world_size() -> int:
    """How many processes train together (1 when tg.distributed is not initialised)."""
    return _group.world_size if _group is not None else 1


def get_local_rank() -> int:
    """This process's rank among those on its machine (choose the device with it: one process per GPU)."""
    return _group.local_rank if _group is not None else 0


def is_main_process() -> bool:
    return get_rank() == 0


# -- waiting, bounded -----------------------------------------------------------------------------------------


def _check_notices(g: Group, what: str) -> None:
    """Answer other ranks' questions; raise if another rank has reported a failure, or left before taking part
    in the collective waited for."""
    status = MPI.Status()
    while g.control.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
        source, tag = status.Get_source(), status.Get_tag()
        message = g.control.recv(source=source, tag=tag)
        if tag == _FAIL:
            raise DistributedError(f"rank {g.rank} stops: {message} (while waiting in {what})")
        if tag == _ASK:
            g.sending.append(g.control.isend(g.collectives, dest=source, tag=_ANSWER))
        elif tag == _ANSWER:
            g.answers[source] = int(message)
        else:
            g.left[source] = int(message)
    g.sending = [r for r in g.sending if not r.Test()]
    late = sorted(r for r, done in g.left.items() if done < g.collectives)
    if late:
        raise DistributedError(f"rank {g.rank} stops: rank {late[0]} exited after {g.left[late[0]]} collectives, "
                               f"before joining {what} (collective {g.collectives})")


def _who_is_missing(g: Group, what: str) -> str:
    """After a timeout: ask every other rank which collective it waits in; those silent for ASK_SECONDS are
    busy outside tg.distributed (hung, or computing) and named."""
    g.answers.clear()
    g.sending.extend(_tell_others(g, _ASK, g.collectives))
    deadline = time.monotonic() + ASK_SECONDS
    others = [r for r in range(g.world_size) if r != g.rank]
    while time.monotonic() < deadline and len(g.answers) < len(others):
        _check_notices(g, what)
        time.sleep(0.01)
    silent = [r for r in others if r not in g.answers]
    elsewhere = [f"rank {r} waits in collective {n}" for r, n in sorted(g.answers.items()) if n != g.collectives]
    parts = [f"rank{'s' if len(silent) > 1 else ''} {', '.join(map(str, silent))} did not answer within "
             f"{ASK_SECONDS:g} s (hung, or busy outside tg.distributed)"] if silent else []
    return "; ".join(parts + elsewhere) or "every rank is waiting in it (an MPI problem?)"


def wait(request: Any, what: str) -> None:
    """Wait for a non-blocking MPI request, polling; raise DistributedError on a failure notice or after the
    group's timeout."""
    g = group()
    if request.Test():
        return
    start = time.monotonic()
    polls = 0
    while not request.Test():
        polls += 1
        if polls % 64:  # poll busily at first (a collective of equal ranks finishes within microseconds), then
            time.sleep(0 if polls < 4096 else 1e-3)  # yield the core; a millisecond between polls once it drags
            continue
        _check_notices(g, what)
        if time.monotonic() - start > g.timeout:
            raise DistributedError(f"rank {g.rank}: {what} (collective {g.collectives}) did not complete within "
                                   f"{g.timeout:g} s (TG_DIST_TIMEOUT): {_who_is_missing(g, what)}")


def start(kind: str, *args: Any) -> Any:
    """Start non-blocking collective ``kind`` (an ``MPI.Comm`` method name such as "Iallreduce") on the data
    communicator, counting it; returns the request."""
    g = group()
    g.collectives += 1
    return getattr(g.comm, kind)(*args)


def barrier() -> None:
    wait(start("Ibarrier"), "barrier")


def broadcast_array(array: np.ndarray, root: int = 0) -> np.ndarray:
    """Broadcast a contiguous numpy array in place from ``root``; returns it."""
    wait(start("Ibcast", array, root), f"broadcast from rank {root}")
    return array


_OPS = {"sum": "SUM", "mean": "SUM", "max": "MAX", "min": "MIN", "prod": "PROD"}


def all_reduce_array(array: np.ndarray, op: str = "sum") -> np.ndarray:
    """A new array: ``op`` (sum, mean, max, min, prod) of ``array`` over every rank."""
    if op not in _OPS:
        raise ValueError(f"all_reduce: op must be one of {', '.join(_OPS)}, got {op!r}")
    send = np.ascontiguousarray(array)
    out = np.empty_like(send)
    began = time.perf_counter()
    wait(start("Iallreduce", send, out, getattr(MPI, _OPS[op])), f"allreduce ({op})")
    group().allreduce_seconds += time.perf_counter() - began
    if op == "mean":
        out = out / get_world_size() if out.dtype.kind not in "fc" else np.divide(out, get_world_size(), out=out)
    return out


def all_gather_json(value: Any) -> list[Any]:
    """Every rank's ``value`` (anything JSON can hold), in rank order."""
    data = np.frombuffer(json.dumps(value).encode(), dtype=np.uint8)
    sizes = np.zeros(get_world_size(), dtype=np.int64)
    wait(start("Iallgather", np.array([data.size], dtype=np.int64), sizes), "allgather (sizes)")
    out = np.empty(int(sizes.sum()), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    wait(start("Iallgatherv", [data, MPI.BYTE], [out, sizes.tolist(), offsets.tolist(), MPI.BYTE]), "allgather")
    return [json.loads(out[o:o + n].tobytes()) for o, n in zip(offsets.tolist(), sizes.tolist())]


# -- failure notices -------------------------------------------------------------------------------------------


def _start_watchdog(g: Group) -> None:
    """Under hydra (``PMI_FD`` set) with several ranks: start this rank's watchdog, handing it a copy of the PMI
    socket (see :mod:`tg.distributed._watchdog`).  ``TG_DIST_WATCHDOG=0`` turns it off."""
    pmi = os.environ.get("PMI_FD", "")
    if g.world_size == 1 or not pmi.isdigit() or not getenv("TG_DIST_WATCHDOG", True):
        return
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_watchdog.py")
    read, write = os.pipe()
    try:
        g.watchdog_process = subprocess.Popen([sys.executable, "-I", "-S", script, str(g.rank), g.host, str(read), pmi],
                                              pass_fds=(read, int(pmi)), stdin=subprocess.DEVNULL)
    except OSError as exc:
        os.close(write)
        print(f"tg.distributed: rank {g.rank} runs without a watchdog ({exc}): if it dies without a word, "
              "mpiexec names its PID only", file=sys.stderr, flush=True)
    else:
        g.watchdog = write
    finally:
        os.close(read)


def _quiet_watchdog(g: Group) -> None:
    """Tell the watchdog this rank ends knowingly (it exits, or raised and told the others): nothing to report."""
    if g.watchdog is not None:
        try:
            os.write(g.watchdog, b"q")
        except OSError:
            pass


def _tell_others(g: Group, tag: int, message: Any) -> list[Any]:
    return [g.control.isend(message, dest=r, tag=tag) for r in range(g.world_size) if r != g.rank]


def _abort_on_exception(kind: type[BaseException], value: BaseException) -> None:
    """After an uncaught exception (sys.excepthook while initialised): tell the other ranks which rank failed and
    why, then abort them all."""
    g = _group
    if g is None or g.world_size == 1:
        return
    first_line = (str(value).splitlines() or [""])[0]
    if isinstance(value, DistributedError):
        notice = first_line
    else:
        notice = f"rank {g.rank} ({g.host}, pid {os.getpid()}) raised {kind.__name__}: {first_line}"
    print(f"tg.distributed: {notice}; aborting all {g.world_size} ranks", file=sys.stderr, flush=True)
    _quiet_watchdog(g)
    requests = _tell_others(g, _FAIL, notice)
    deadline = time.monotonic() + 1.0  # let the others print why they stop before the abort ends them
    while time.monotonic() < deadline and not MPI.Request.Testall(requests):
        time.sleep(0.01)
    time.sleep(max(0.0, min(0.5, deadline - time.monotonic())))
    g.comm.Abort(1)


def _announce_exit() -> None:
    """At exit: tell the other ranks how many collectives this one took part in (see :func:`_check_notices`)."""
    g = _group
    if g is None or g.world_size == 1:
        return
    _quiet_watchdog(g)
    if MPI.Is_finalized():
        return
    requests = _tell_others(g, _LEFT, g.collectives)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and not MPI.Request.Testall(requests):
        time.sleep(0.001)
