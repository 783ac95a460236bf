"""``python -m training.data.debian``: see :mod:`training.data.debian.cli`."""

from __future__ import annotations

from training.data.debian.cli import main

raise SystemExit(main())
