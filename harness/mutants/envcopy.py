"""A private copy of a stack's environment, safe to edit.

uv installs a package by hard-linking (or cloning) the files of its cache, so the file
``site-packages/alembic/autogenerate/compare.py`` of a stack may be the very inode that every
other environment on the machine, and uv's cache itself, hold. Editing it in place would seed the
fault everywhere. The copy here writes every file anew (``shutil.copy2``: new inodes, same bytes
and times), and points what names the environment's own path (the console scripts' ``#!`` lines,
``activate``, any ``.pth``) at the copy, so ``copy/bin/flask`` runs the copy's libraries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The distributions the faults go into; `verify_copy` checks each imports from the copy.
MODULES = ("flask", "alembic", "flask_migrate", "flask_sqlalchemy", "dotenv")


class CopyError(Exception):
    """A copy that does not stand on its own; the message says what still points elsewhere."""


def copy_env(src: Path, dst: Path) -> list[Path]:
    """Copy the environment `src` to `dst` (which must not exist) and return the files whose
    text named `src` and now names `dst`."""
    src, dst = Path(src), Path(dst)
    shutil.copytree(src, dst, symlinks=True, copy_function=shutil.copy2)
    old, new = str(src).encode(), str(dst).encode()
    rewritten = []
    for path in sorted(dst.rglob("*")):
        if path.is_symlink():
            target = os.readlink(path)
            if target.startswith(str(src)):
                path.unlink()
                path.symlink_to(str(dst) + target[len(str(src)) :])
            continue
        if not path.is_file():
            continue
        data = path.read_bytes()
        if old in data and b"\0" not in data:
            path.write_bytes(data.replace(old, new))
            shutil.copystat(src / path.relative_to(dst), path)
            rewritten.append(path)
    return rewritten


@dataclass(frozen=True)
class CopyCheck:
    """Where the copy's interpreter finds its prefix and each library: all under the copy."""

    prefix: str
    files: dict[str, str]  # module -> its __file__


def verify_copy(dst: Path, src: Path) -> CopyCheck:
    """Prove the copy stands alone: its interpreter's prefix and every library it imports are
    under `dst`, its console scripts run its own interpreter, no regular file is a hard link
    shared with `src`, and nothing in its scripts still names `src`."""
    dst = Path(dst)
    python = dst / "bin" / "python"
    code = "import sys, importlib; print(sys.prefix)\n"
    code += "".join(f"print(importlib.import_module({m!r}).__file__)\n" for m in MODULES)
    out = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, env=_clean_env(), check=False
    )
    if out.returncode != 0:
        raise CopyError(f"{python}: cannot import the stack's libraries: {out.stderr.strip()}")
    prefix, *files = out.stdout.split("\n")[: 1 + len(MODULES)]
    check = CopyCheck(prefix=prefix, files=dict(zip(MODULES, files, strict=True)))
    outside = [v for v in (prefix, *files) if not Path(v).is_relative_to(dst)]
    if outside:
        raise CopyError(f"{dst}: the copy's interpreter uses files outside the copy: {', '.join(outside)}")
    for script in ("flask", "alembic"):
        first = (dst / "bin" / script).read_text(encoding="utf-8").splitlines()[0]
        if first != f"#!{python}":
            raise CopyError(f"{dst / 'bin' / script}: runs {first[2:]!r}, not the copy's interpreter")
    shared = [p for p in dst.rglob("*") if _same_inode(p, Path(src) / p.relative_to(dst))]
    if shared:
        raise CopyError(f"{dst}: {len(shared)} file(s) share an inode with {src}, e.g. {shared[0]}")
    return check


def _same_inode(copy: Path, original: Path) -> bool:
    if copy.is_symlink() or not copy.is_file() or not original.exists():
        return False
    return os.stat(copy).st_ino == os.stat(original).st_ino and copy.stat().st_dev == original.stat().st_dev


def _clean_env() -> dict[str, str]:
    """The caller's environment without what would make Python look elsewhere."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    return {k: v for k, v in os.environ.items() if k not in drop} | {"PYTHONDONTWRITEBYTECODE": "1"}
