"""Loads the migrate-harness pytest plugin for every run started in this repository.

The plugin is registered here rather than through an entry point so that a stack's own
environment (which never has the harness installed) cannot pick it up by accident.
"""

pytest_plugins = ["harness.plugin", "harness.claims.plugin", "pytester"]
