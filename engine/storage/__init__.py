"""Storage layer: never imports torch."""
