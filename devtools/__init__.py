"""Developer tools shared by scripts/ and tests/ (not part of the shipped `reconciler` package)."""
