"""Verification power, measured: seed realistic faults into a copy of a stack and see which the
claims and the scenario library catch (`tox -e mutants`, `python -m harness.mutants`)."""
