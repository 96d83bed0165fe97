"""The emulator's one exception type: what went wrong, at which PTX line."""

from __future__ import annotations


class EmulatorError(RuntimeError):
    """PTX the emulator cannot parse or run (an unsupported instruction, a bad address...)."""

    def __init__(self, message: str, line: int | None = None, text: str | None = None):
        where = f" (PTX line {line}: {text.strip()})" if line is not None and text is not None else ""
        super().__init__(f"ptx emulator: {message}{where}")
        self.line, self.text = line, text
