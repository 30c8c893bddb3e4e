"""Command-line tools, installed as console scripts (see pyproject.toml)."""
