"""One module per CLI verb; see localsft/cli.py."""
