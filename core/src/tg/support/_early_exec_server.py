"""Server side of tg.support.early_exec: runs each command read from stdin, answers on stdout, ends with stdin."""

from __future__ import annotations

import os
import pickle
import subprocess

from tg.support._frames import pack_exception, read_payload, write_frame


def main() -> None:
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    # Neither commands nor stray prints may touch the frame channels: fd 0 becomes /dev/null, fd 1 stderr.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    while True:
        try:
            payload = read_payload(requests)
        except EOFError:  # the parent closed the pipe or exited
            return
        try:
            argv, input_, cwd, env, timeout = pickle.loads(payload)
            done = subprocess.run(
                argv, input=input_, capture_output=True, cwd=cwd, env=env, timeout=timeout, check=False
            )
            reply: tuple[object, ...] = ("ran", done.returncode, done.stdout, done.stderr)
        except Exception as exc:  # noqa: BLE001 - every error goes to the caller
            reply = ("error", pack_exception(exc))
        write_frame(replies, reply)


if __name__ == "__main__":
    main()
