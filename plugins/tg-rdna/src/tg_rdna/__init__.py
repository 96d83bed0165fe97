"""tg-rdna: tg's backend for AMD RDNA3 GPUs (gfx1100, wave32), written as assembly from tg's micro-ops.

Backends it provides (the hooks live in :mod:`tg_rdna.plugin`):

- ``rdna``: the RDNA3 emitter; LLVM (``llvm-mc`` + ``ld.lld``) builds the kernels into HSA code objects (the new
  kernels of a schedule together, into one) that ROCm's OpenCL loads as binary programs (through pyopencl);
- ``rdna:emu``: the same code objects run on the CPU by the emulator in :mod:`tg_rdna.emulator`.

Importing this package imports nothing else: tg loads :mod:`tg_rdna.plugin` only when an rdna backend is
selected, LLVM runs only when a kernel is compiled, and pyopencl is imported only by the GPU runtime's first use.
"""

__version__ = "0.1.0"
