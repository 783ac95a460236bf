"""The development set: val clips, searched with queries written apart from captioning."""
