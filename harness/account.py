"""The account scenario code runs as: when the harness is root, an unprivileged account of its own.

A scenario's ``models:`` block is Python that ``flask`` imports, so a scenario file is code. As
root (CI runs as root) that code would be root: it could write anywhere, read the throwaway
server's password file, or read the harness's environment in ``/proc``. So, when the harness is
root, every command of a scenario or of the claims probe runs as `SCENARIO_ACCOUNT`, a system
account created on first use, with no supplementary groups and a umask of 077:

- its temporary folders are made by `private_folder` and handed to it (`hand_over`) before each
  command, so it can write there and nowhere else of the harness's;
- the stack environments it runs are built where it can read them (`harness.stacks`);
- the server's folder (owned by ``postgres``, mode 700) and every root process's environment
  and file descriptors are out of its reach.

Why a dedicated account rather than ``nobody``: ``nobody`` is shared with whatever else on the
machine drops to it (NFS's squashed root among them), and it must differ from the server's own
account (``postgres``, or ``migrate-harness`` when the machine has no ``postgres``), or scenario
code could read the server's password file.

When the harness is not root nothing changes: commands run as the user, whose own rights are the
limit (see docs/robustness.md).
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCENARIO_ACCOUNT = "migrate-harness-scenario"
UMASK = 0o077
# Folders made by `private_folder` in this process: the only places `hand_over` gives away.
_GIVEN: set[Path] = set()


class ConfinementError(Exception):
    """Scenario code could not be confined as intended; the message says why and what to do."""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str

    def popen_kwargs(self) -> dict[str, Any]:
        """What `subprocess.Popen` needs to start a process as this account and nothing more."""
        return {"user": self.uid, "group": self.gid, "extra_groups": [], "umask": UMASK}

    def env(self) -> dict[str, str]:
        """The variables that name the user, as a login of this account has them."""
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name}

    def blocked_at(self, path: Path, need: int = os.R_OK) -> Path | None:
        """The first folder on the way to `path` this account cannot enter (or `path` itself if it
        lacks `need`), from the mode bits; None if it can reach it."""
        parts = [*reversed(path.parents), path]
        for i, part in enumerate(parts):
            try:
                info = part.stat()
            except OSError:
                return part
            wanted = need if i == len(parts) - 1 else os.X_OK
            if part.is_dir() and i == len(parts) - 1:
                wanted |= os.X_OK
            if info.st_uid == self.uid:
                shift = 6
            elif info.st_gid == self.gid:
                shift = 3
            else:
                shift = 0
            if (info.st_mode >> shift) & wanted != wanted:
                return part
        return None


@functools.cache
def scenario_account() -> Account | None:
    """The account scenario code runs as when the harness is root; None when it is not root."""
    if os.geteuid() != 0:
        return None
    entry = _account_entry()
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def _account_entry() -> pwd.struct_passwd:
    for attempt in range(5):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(SCENARIO_ACCOUNT)
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        done = subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", SCENARIO_ACCOUNT],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if done.returncode == 0:
            continue
        # Another harness process (an xdist worker) may be creating it at this moment: the name
        # is then taken (exit 9) or /etc/passwd locked (exit 1 or 10). Look again shortly.
        if attempt == 4:
            raise ConfinementError(
                f"running as root, the harness runs scenario code as the account {SCENARIO_ACCOUNT!r}, "
                f"and could not create it: {useradd} exited {done.returncode}: {done.stderr.strip()}. "
                f"What to do: create it (useradd --system --user-group {SCENARIO_ACCOUNT}) or run as "
                "another user."
            )
        time.sleep(0.2)
    return pwd.getpwnam(SCENARIO_ACCOUNT)


def popen_kwargs() -> dict[str, Any]:
    """Popen arguments that start a scenario's command as the scenario account ({} if not root)."""
    account = scenario_account()
    return account.popen_kwargs() if account else {}


def private_folder(prefix: str) -> Path:
    """A new temporary folder (``tempfile.mkdtemp``, mode 700) that belongs to the scenario account
    when the harness is root; it fails with one line if that account cannot reach ``TMPDIR``."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    account = scenario_account()
    if account is not None:
        blocked = account.blocked_at(folder.parent, os.X_OK)
        if blocked is not None:
            folder.rmdir()
            mode = stat.filemode(blocked.stat().st_mode)
            raise ConfinementError(
                f"the temporary folder {folder.parent} is out of reach of the account {account.name!r} "
                f"that runs scenario code as root: {blocked} is mode {mode}. "
                "What to do: set TMPDIR to a folder every account can enter, such as /tmp."
            )
        os.chown(folder, account.uid, account.gid)
        _GIVEN.add(folder)
    return folder


def release(folder: Path) -> None:
    """Forget a folder made by `private_folder` (it is being removed)."""
    _GIVEN.discard(folder)


def hand_over(cwd: Path) -> None:
    """Before a command: give the scenario account what the harness wrote into `cwd` since the
    last command (the project it copied, a folder it made), so that the command can write there.

    Only inside a folder from `private_folder`, and only entries the harness owns with a single
    link: each is opened without following links and changed through its descriptor, so a link
    scenario code planted cannot turn this into a chown of a file elsewhere.
    """
    account = scenario_account()
    if account is None:
        return
    cwd = Path(os.path.abspath(cwd))
    if not any(cwd == given or given in cwd.parents for given in _GIVEN):
        raise ConfinementError(
            f"cannot run a scenario's command in {cwd}: as root, commands run as the account "
            f"{account.name!r}, only in folders made for it (harness.account.private_folder)."
        )
    me = os.geteuid()
    for top, dirs, files in os.walk(cwd):
        for name in [*dirs, *files]:
            _give(os.path.join(top, name), account, me)
    _give(str(cwd), account, me)


def _give(path: str, account: Account, me: int) -> None:
    try:
        info = os.lstat(path)
    except OSError:
        return
    if info.st_uid != me or stat.S_ISLNK(info.st_mode):
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    try:
        opened = os.fstat(fd)
        if opened.st_uid == me and (stat.S_ISDIR(opened.st_mode) or opened.st_nlink == 1):
            os.fchown(fd, account.uid, account.gid)
    finally:
        os.close(fd)


def remove_links(cwd: Path) -> list[str]:
    """After a command: remove the symbolic links and extra hard links it left in `cwd`, which
    would make the harness (root) read or write, through them, files scenario code cannot reach.
    Neither Flask-Migrate nor Alembic makes links; scenario code that does gets them removed and
    listed. Nothing is done when the harness is not root."""
    if scenario_account() is None:
        return []
    removed = []
    for top, dirs, files in os.walk(cwd):
        for name in [*dirs, *files]:
            path = os.path.join(top, name)
            with contextlib.suppress(OSError):
                info = os.lstat(path)
                if stat.S_ISLNK(info.st_mode) or (not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1):
                    os.unlink(path)
                    removed.append(os.path.relpath(path, cwd))
    return sorted(removed)


def command_lines_showing(secret: str) -> list[int]:
    """Processes whose command line holds `secret`: /proc/PID/cmdline is readable by every
    account, the scenario account included (a root process's environment is not)."""
    found = []
    # os.listdir, not Path.glob: a glob stops at the first entry it may not stat (pathlib returns
    # quietly on PermissionError), and returned nothing under pytest.
    for pid in (name for name in os.listdir("/proc") if name.isdigit()):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as handle:
            if secret.encode() in handle.read():
                found.append(int(pid))
    return sorted(found)
