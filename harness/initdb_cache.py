"""One ``initdb`` per PostgreSQL install, copied for every throwaway server after it.

``initdb`` is most of a throwaway server's start (about 1 s of 1.4 s on a quiet 2-core machine)
and writes the same files every time. The first server that finds no copy runs it as before
and keeps a copy of the untouched data directory; each later server copies that instead.

The copy is keyed by everything that shapes what ``initdb`` writes: the install (the real path,
size and modification time of its ``pg_ctl`` and ``postgres``), the options, the account that
owns the cluster, the locale and time zone it inherits. A changed install or locale gets a new
copy; a copy that cannot be read or written is no error, only an ``initdb`` as before.

The copy holds no usable password: the cluster is made with a random one that is never written
down, and each server sets its own fresh password through its private socket once it runs
(``server.ThrowawayServer``), so two servers never share one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.reaper import REAPER

# What initdb reads from its environment into the cluster (lc_* settings, encoding, timezone).
_ENVIRONMENT = (
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_COLLATE",
    "LC_CTYPE",
    "LC_MESSAGES",
    "LC_MONETARY",
    "LC_NUMERIC",
    "LC_TIME",
    "TZ",
    "PGTZ",
)


def _stat(path: Path) -> list[object]:
    try:
        info = path.stat()
    except OSError:
        return [str(path), None]
    return [str(path.resolve()), info.st_size, info.st_mtime_ns]


@dataclass(frozen=True)
class InitdbCache:
    """Where copies of fresh clusters are kept (a folder only its owner can enter), and the key
    of the one this server needs."""

    folder: Path
    key: str

    @classmethod
    def for_install(cls, folder: Path, pg_ctl: str, options: list[str], owner_uid: int) -> InitdbCache:
        binaries = Path(pg_ctl).resolve().parent
        facts = {
            "pg_ctl": _stat(binaries / "pg_ctl"),
            "postgres": _stat(binaries / "postgres"),
            "options": options,
            "owner": owner_uid,
            "environment": {name: os.environ.get(name) for name in _ENVIRONMENT},
            "localtime": os.path.realpath("/etc/localtime"),
        }
        digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
        return cls(folder=folder, key=digest)

    @property
    def copy(self) -> Path:
        return self.folder / self.key

    def restore(self, datadir: Path, owner: tuple[int, int] | None) -> bool:
        """Copy the kept cluster to `datadir` (owned by `owner`, uid and gid, when given);
        False when there is none, and then `datadir` does not exist."""
        if not self.copy.is_dir():
            return False
        try:
            shutil.copytree(self.copy, datadir, symlinks=True)
            if owner is not None:
                for path in [datadir, *datadir.rglob("*")]:
                    os.lchown(path, *owner)
        except OSError:
            shutil.rmtree(datadir, ignore_errors=True)
            return False
        return True

    def keep(self, datadir: Path) -> None:
        """Keep a copy of `datadir`, fresh from initdb. Two servers may race to keep the same key:
        each copies to a folder of its own and renames it into place; the loser's is removed."""
        with contextlib.suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            staging = Path(tempfile.mkdtemp(prefix=f".{self.key}-", dir=self.folder))
            REAPER.add("folder", str(staging))  # a copy cut short by kill -9 is not left behind
            try:
                shutil.copytree(datadir, staging / "data", symlinks=True)
                (staging / "data").rename(self.copy)
            except OSError:
                pass  # another server kept it first, or the cache is not writable
            finally:
                shutil.rmtree(staging, ignore_errors=True)
                REAPER.remove("folder", str(staging))
