"""The CUDA driver behind the ``ptx`` runtime, through one of two Python bindings.

:mod:`.probe` says, through ctypes alone, whether a driver and a GPU are there and which binding will be
used; :class:`.device.CudaDevice` is what the runtime calls; :mod:`.via_bindings` (NVIDIA's cuda-bindings,
binary wheels that need only the driver) and :mod:`.via_pycuda` (pycuda, built against a CUDA toolkit)
implement it.  ``TG_PTX_DRIVER`` chooses one; unset, pycuda when it is installed, else cuda-bindings.
"""
