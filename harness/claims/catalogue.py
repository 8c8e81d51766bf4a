"""The claims catalogue (``claims/catalogue.yaml``): which sentences of the article are checked, and
by which check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.claims.checks import CHECKS


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    claim: str
    check: str


def load_catalogue(path: Path) -> list[Claim]:
    """The catalogue's claims in order; ValueError (or yaml.YAMLError) naming the file on bad input."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    claims = []
    for index, entry in enumerate(data.get("claims", []) if isinstance(data, dict) else []):
        missing = {"id", "section", "claim", "check"} - set(entry)
        if missing:
            raise ValueError(f"{path}: claims[{index}] lacks {sorted(missing)}")
        if entry["check"] not in CHECKS:
            raise ValueError(
                f"{path}: claim {entry['id']!r} names an unknown check {entry['check']!r}; "
                f"known checks: {', '.join(sorted(CHECKS))}"
            )
        claims.append(Claim(entry["id"], entry["section"], entry["claim"], entry["check"]))
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: claim ids repeat")
    return claims
