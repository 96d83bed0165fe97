"""Child side of tg.support.cross_process: `python -m tg.support._cross_process_child FD` runs a generator,
framing its items to FD."""

from __future__ import annotations

import pickle
import sys

from tg.support._frames import pack_exception, read_frame, write_frame


def main() -> None:
    out = int(sys.argv[1])
    parent_path, fn_blob, args_blob = read_frame(sys.stdin.buffer)
    sys.path[:] = parent_path  # before unpickling, so what the parent pickled by reference imports here
    try:
        fn = pickle.loads(fn_blob)
        args, kwargs = pickle.loads(args_blob)
        for item in fn(*args, **kwargs):
            write_frame(out, ("item", item))
    except Exception as exc:  # noqa: BLE001 - every error goes to the parent
        write_frame(out, ("error", pack_exception(exc)))
    else:
        write_frame(out, ("done",))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent reports it, not us
        sys.exit(130)
