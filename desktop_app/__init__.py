"""Earshot desktop app (PySide6): a thin GUI over :mod:`engine`.

Threads: every engine call runs through :class:`desktop_app.tasks.TaskRunner` (results are delivered on
the GUI thread), every library write through :class:`desktop_app.writer.LibraryWriter`, and audio output
through :mod:`desktop_app.player`, the only module that imports sounddevice.
"""
