"""The blind evaluation set: packages never trained on, queries written apart from captioning."""
