"""The emulator's one exception type: what went wrong, in which kernel, at which instruction."""

from __future__ import annotations


class EmulatorError(RuntimeError):
    """A code object the emulator cannot run, or a kernel that would misbehave on the hardware."""

    def __init__(self, message: str, kernel: str | None = None, address: int | None = None,
                 text: str | None = None):
        where = ""
        if kernel is not None:
            where += f" in kernel {kernel!r}"
        if address is not None:
            where += f" at 0x{address:x}"
        if text is not None:
            where += f" ({text.strip()})"
        super().__init__(f"rdna emulator: {message}{where}")
        self.kernel, self.address, self.text = kernel, address, text
