"""tg-clang: the CPU backend of tg.  Kernels are rendered to C, compiled by clang and run through ctypes.

Importing this package imports nothing heavy; core loads :mod:`tg_clang.plugin` only when the ``clang``
backend is selected or probed.
"""

__version__ = "0.1.0"
