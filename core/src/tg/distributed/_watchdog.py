"""The watchdog of one rank: names the rank when it dies without a word (a signal, ``os._exit``, a crash).

A rank that raises or exits tells the others itself (:mod:`tg.distributed.group`); a rank killed by SIGKILL,
the OOM killer or a segfault, or one that calls ``os._exit``, cannot.  MPICH's ``mpiexec`` (hydra) then kills
every rank and names a PID.  So :func:`tg.distributed.group.init` starts this script beside each rank (a plain
``python -I -S`` process: it imports neither tg nor MPI) and it waits for the rank to end:

* the rank says goodbye first (a byte down the pipe: it exits, or raised and told the others): nothing to do;
* the rank ends without one: the watchdog moves into a process group of its own, closes its copy of the rank's
  PMI socket, prints ``tg.distributed: rank R (pid P on HOST) died: killed by signal 9 (SIGKILL)`` and exits.

Why it holds the PMI socket (hydra's ``PMI_FD``) and sits in the rank's process group until then: hydra
ends the run when a rank's PMI socket closes, or when it reaps a rank that a signal killed, by SIGKILL to the
process group of every rank.  While the watchdog holds the socket and the rank's stdout/stderr, the death
stirs nothing in hydra, so the watchdog acts first: it leaves the rank's group (hydra's kill would take it
too), closes the socket (hydra kills the other ranks, and their watchdogs with them: they never speak), then
prints the rank's name, which hydra still forwards.  Run as ``python -I -S _watchdog.py RANK HOST PIPE_FD
PMI_FD`` (PMI_FD -1: none); it serves the process that started it.
"""

from __future__ import annotations

import os
import select
import signal
import sys


def _ending(pid: int) -> str:
    """How the (not yet reaped) process ``pid`` ended, read from /proc, in words."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        status = int(fields[49])  # field 52, exit_code (Linux >= 3.5): a wait status
    except (OSError, IndexError, ValueError):
        return "killed by a signal, or ended by os._exit, without telling tg.distributed"
    if status & 0x7F:
        number = status & 0x7F
        try:
            name = f" ({signal.Signals(number).name})"
        except ValueError:
            name = ""
        return f"killed by signal {number}{name}"
    return f"exited with status {status >> 8} without telling tg.distributed (os._exit, or exit in native code)"


def watch(rank: int, host: str, pipe: int, pmi_fd: int) -> None:
    pid = os.getppid()
    try:
        ended = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (Linux < 5.3): poll the parent instead
        ended = -1
    quiet = False
    waiting = [pipe] + ([ended] if ended >= 0 else [])
    while True:
        ready, _, _ = select.select(waiting, [], [], None if ended >= 0 else 0.05)
        if pipe in ready:
            data = os.read(pipe, 64)
            quiet = quiet or bool(data)
            if not data:
                waiting.remove(pipe)  # every copy of the write end is closed: the rank is ending
        if (ended >= 0 and ended in ready) or os.getppid() != pid:
            break
    if quiet:
        return
    how = _ending(pid)  # before hydra can reap it
    os.setpgid(0, 0)
    if pmi_fd >= 0:
        os.close(pmi_fd)
    os.write(2, f"tg.distributed: rank {rank} (pid {pid} on {host}) died: {how}; mpiexec ends the other "
                f"ranks\n".encode())


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
