"""The repository's own pytest setup.

The migrate-harness plugin itself comes from the ``pytest11`` entry point that installing the
project registers (``pip install -e .``, which tox does), exactly as another tutorial's
repository gets it. Here we add only pytester, which the harness's own tests use to run inner
pytest sessions.
"""

pytest_plugins = ["pytester"]
