"""
Run the ``python -m buttress.vault`` command line; see `buttress.vault._cli`.
"""

from __future__ import annotations

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
