"""Commands that other installed packages add to Earshot, found through the ``earshot.plugins`` entry points.

``earshot learn`` fine-tunes a model with the training package; the engine may not import training
(DESIGN §1), so training declares ``learn = "training.learn:plugin"`` in this group and the engine loads
it by name when the user asks for it. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from engine.errors import EarshotError

GROUP = "earshot.plugins"


def load(name: str) -> Callable:
    """The object the entry point ``name`` of :data:`GROUP` provides (its factory called once).
    Raises :class:`EarshotError` with what to do when no installed package provides it."""
    found = list(entry_points(group=GROUP, name=name))
    if not found:
        raise EarshotError(
            f"`{name}` needs Earshot's training package, which is not installed with this copy of Earshot "
            "(reinstall Earshot: `pip install earshot` installs it; in a checkout, `pip install -e .`)"
        )
    return found[0].load()()
