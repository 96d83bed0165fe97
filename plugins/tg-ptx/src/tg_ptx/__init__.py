"""tg-ptx: tg's backend for NVIDIA GPUs, written as PTX assembly from tg's micro-ops.

Backends it provides (the hooks live in :mod:`tg_ptx.plugin`):

- ``ptx``: the PTX emitter with the pycuda runtime (the driver JIT-compiles the PTX), for real GPUs;
- ``ptx:emu``: the same emitter with a CPU emulator that runs the PTX text with numpy.

Importing this package imports nothing else: tg loads :mod:`tg_ptx.plugin` only when a ptx backend is
selected, and pycuda only when the GPU runtime is actually used.
"""

__version__ = "0.1.0"
