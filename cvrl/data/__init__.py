"""Cross-version datasets: layouts, alignment, references, caches, demo."""
