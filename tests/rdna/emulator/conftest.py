"""Tests of the RDNA3 emulator: import tg_rdna from the source tree when it is not installed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("tg_rdna") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "plugins" / "tg-rdna" / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
