"""The truth timeline: for which readers (by install date) the article's claims held.

- `search`: pure bisection over dates and the culprit search (delta debugging over pins);
  fed a resolver and an evaluator, so its tests need no network and no server.
- `datestacks`: the article's install line resolved as a reader resolved it on a date (uv's
  --exclude-newer), the named exemptions, environments cached by resolution.
- `run`: `python -m harness.timeline.run` (tox -e timeline): probes, the record
  (docs/timeline.json), incremental runs.
- `render`: docs/timeline.md and the chart.
"""
