"""Shared helpers of tg-rdna's tests: whether LLVM is here (and what to install when not)."""

from __future__ import annotations

import pytest
from tg_rdna import toolchain

LLVM_PROBLEM = toolchain.problem()
#: Tests that run llvm-mc / ld.lld: skipped, saying what to install, where LLVM is missing (CI installs it).
needs_llvm = pytest.mark.skipif(LLVM_PROBLEM is not None, reason=f"LLVM missing: {LLVM_PROBLEM}")
