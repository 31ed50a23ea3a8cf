"""
Test helpers: a virtual clock and a real OpenBao dev server.
"""

from __future__ import annotations

from ._clock import FakeClock
from ._openbao import OpenBaoDevServer, find_bao_binary

__all__ = ["FakeClock", "OpenBaoDevServer", "find_bao_binary"]
