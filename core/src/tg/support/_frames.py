"""Wire format of tg's helper processes: length-prefixed pickle frames over pipes; exceptions sent across."""

from __future__ import annotations

import os
import pickle
import struct

TYPE_CHECKING = False  # not typing's own: importing typing is what this avoids
if TYPE_CHECKING:  # (the early-exec helper loads this module: typing and traceback are most of its start-up)
    from typing import IO, Any

_HEADER = struct.Struct("!Q")

# The directory holding the `tg` package, so `python -m tg.<helper>` works even where tg is on sys.path only.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RemoteTraceback(Exception):
    """The formatted traceback of an exception raised in another process; set as its __cause__ here."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def write_payload(out: IO[bytes] | int, payload: bytes) -> None:
    """Write one already pickled frame to a binary stream (flushed) or a raw file descriptor."""
    if isinstance(out, int):
        for chunk in (_HEADER.pack(len(payload)), payload):
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view) :]
    else:
        out.write(_HEADER.pack(len(payload)))
        out.write(payload)
        out.flush()


def write_frame(out: IO[bytes] | int, obj: Any) -> None:
    """Pickle obj with cloudpickle (before writing anything, so a pickling error leaves no half frame)."""
    write_payload(out, _cloudpickle().dumps(obj))


def write_plain_frame(out: IO[bytes] | int, obj: Any) -> None:
    """Pickle obj (plain data: no functions or classes by value) with the standard pickle module, and write it."""
    write_payload(out, pickle.dumps(obj))


def _cloudpickle() -> Any:
    # imported on first use: the early-exec helper sends plain data only, and its start-up is on the path of a
    # program's first compile
    import cloudpickle

    return cloudpickle


def _read_exact(inp: IO[bytes] | int, size: int, clean_eof: bool) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = os.read(inp, size - len(data)) if isinstance(inp, int) else inp.read(size - len(data))
        if not chunk:
            raise EOFError("end of stream" if clean_eof and not data else "end of stream inside a frame")
        data += chunk
    return bytes(data)


def read_payload(inp: IO[bytes] | int) -> bytes:
    """Read one frame's pickled bytes; EOFError at the end of the stream."""
    (size,) = _HEADER.unpack(_read_exact(inp, _HEADER.size, clean_eof=True))
    return _read_exact(inp, size, clean_eof=False)


def read_frame(inp: IO[bytes] | int) -> Any:
    """Read and unpickle one frame; EOFError at the end of the stream."""
    return pickle.loads(read_payload(inp))


def split_frames(buffer: bytearray) -> list[bytes]:
    """The pickled bytes of the complete frames at the start of buffer, removed from it (for non-blocking
    reads); unpickling is the caller's, one frame at a time, so that a frame that fails spoils no other."""
    frames = []
    while len(buffer) >= _HEADER.size:
        (size,) = _HEADER.unpack_from(buffer)
        end = _HEADER.size + size
        if len(buffer) < end:
            break
        frames.append(bytes(buffer[_HEADER.size : end]))
        del buffer[:end]
    return frames


def pack_exception(exc: BaseException) -> tuple[bytes | None, str, str, str]:
    """(pickled exception or None when it does not survive a round trip, type name, message, traceback)."""
    import traceback

    text = "".join(traceback.format_exception(exc))
    blob: bytes | None
    blob = None
    for dumps in (pickle.dumps, lambda obj: _cloudpickle().dumps(obj)):  # cloudpickle for classes by value
        try:
            candidate = dumps(exc)
            pickle.loads(candidate)
        except Exception:  # noqa: BLE001 - whatever breaks the round trip, fall back to type name and message
            continue
        blob = candidate
        break
    return blob, f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc), text


def unpack_exception(packed: tuple[bytes | None, str, str, str]) -> BaseException:
    """The exception pack_exception described, its remote traceback attached as __cause__."""
    blob, type_name, message, text = packed
    exc: BaseException = RuntimeError(f"{type_name}: {message}")
    if blob is not None:
        try:
            exc = pickle.loads(blob)
        except Exception:  # noqa: BLE001 - e.g. its class cannot be imported here
            exc = RuntimeError(f"{type_name}: {message}")
    exc.__cause__ = RemoteTraceback(text)
    return exc


def helper_env() -> dict[str, str]:
    """Our environment, with PACKAGE_ROOT first on PYTHONPATH, for a `python -m tg.<helper>` child."""
    env = dict(os.environ)
    # An installed tg needs nothing, and site-packages ahead of the standard library could shadow part of it.
    if os.path.basename(PACKAGE_ROOT) not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    return env
