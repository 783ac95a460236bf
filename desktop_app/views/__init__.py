"""Widgets: they show what they are given and report what the user did (signals); no engine calls."""
