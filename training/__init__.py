"""Earshot training: datasets, losses, the training loop and export to model bundles (imports engine, never the app)."""
