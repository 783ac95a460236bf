"""Earshot engine: decode, window, embed, store and search sounds. Knows no Qt and no training code."""

from __future__ import annotations

__version__ = "0.1.0"
