"""Shipped search spaces: one YAML file per space, registered by file stem.

Installed as the package data ``nas.search_spaces`` (see pyproject.toml).
"""
