"""Data augmentation: an LLM client (OpenAI-compatible, cached), back-translation and merged captions with an
offline fallback, word-level caption variants, and audio mixing."""
