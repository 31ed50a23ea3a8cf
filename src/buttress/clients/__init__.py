"""
The client layer: put any blocking client behind a `buttress.Guard`.

A backend is a `ClientAdapter` subclass plus a `buttress.Classifier` for its
errors; `buttress.vault` and `buttress.dbapi` are two.
"""

from __future__ import annotations

from .._classify import Classifier, Verdict
from ._adapter import ClientAdapter

__all__ = ["Classifier", "ClientAdapter", "Verdict"]
