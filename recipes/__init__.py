"""Training recipes (YAML presets) and example data sets, installed as the `localsft_recipes` package data."""
