"""The complete schema view and the roundtrip judged against the baseline.

The pure tests pin the comparison and its message; the others run scenarios on the real stack
and server: an index expression the inspector cannot see must change the schema snapshot, and a
table the scenario made by SQL before its first migration is part of the baseline, not a leftover.
"""

from __future__ import annotations

from pathlib import Path
from unittest.mock import ANY

import pytest
import sqlalchemy as sa
from helpers import session_for

from harness import database
from harness.database import scratch_database
from harness.observe.normalise import observe
from harness.observe.schema import catalog_schema, schema_diff, summarise_diff
from harness.scenario import parse_scenario
from harness.server import Server
from harness.stacks import StackEnv


def _view(index: str, columns: list[dict] | None = None) -> dict:
    return {
        "tables": {
            "users": {
                "columns": columns or [{"name": "id", "type": "integer", "nullable": False}],
                "constraints": {"users_pkey": "PRIMARY KEY (id)"},
                "indexes": {"ix_users_email": index},
            }
        },
        "types": {},
    }


LOWER = "CREATE INDEX ix_users_email ON public.users USING btree (lower((email)::text))"
UPPER = "CREATE INDEX ix_users_email ON public.users USING btree (upper((email)::text))"


def test_schema_diff_names_the_changed_object_by_its_path_with_both_sides():
    assert schema_diff(_view(LOWER), _view(LOWER)) == []
    assert schema_diff(_view(LOWER), _view(UPPER), ("in the baseline", "at base")) == [
        f"tables.users.indexes.ix_users_email: {LOWER} in the baseline, {UPPER} at base"
    ]


def test_schema_diff_says_which_side_holds_an_object_and_compares_columns_by_name_then_order():
    a = _view(LOWER, [{"name": "id", "type": "integer"}, {"name": "email", "type": "text"}])
    b = _view(LOWER, [{"name": "email", "type": "text"}, {"name": "id", "type": "bigint"}])
    b["types"]["pet_kind"] = {"kind": "enum", "labels": ["cat", "dog"]}
    del b["tables"]["users"]["indexes"]["ix_users_email"]
    assert schema_diff(a, b, ("before", "after")) == [
        "tables.users.columns.id.type: integer before, bigint after",
        "tables.users.columns: order id, email before, email, id after",
        f"tables.users.indexes.ix_users_email: only before: {LOWER}",
        "types.pet_kind: only after: {'kind': 'enum', 'labels': ['cat', 'dog']}",
    ]


def test_summarise_diff_keeps_the_first_lines_and_counts_the_rest():
    assert summarise_diff(["a", "b"]) == "a; b"
    assert summarise_diff([str(i) for i in range(10)], limit=3) == "0; 1; 2; and 7 more"


def _run(text: str, stack: StackEnv, server: Server) -> tuple[object, dict]:
    scenario = parse_scenario(text, Path(f"scenarios/{text.split()[1]}.yaml"))
    with session_for(server) as session:
        run = session.run_scenario(scenario, stack.stack.name)
    return run, observe(run)


INDEXED = """\
id: {id}
title: an index on an expression
steps:
  - name: users with an index on {fn}(email)
    models: |
      class User(db.Model):
          __tablename__ = "users"

          id = db.Column(db.Integer, primary_key=True)
          email = db.Column(db.String(255), nullable=False)


      db.Index("ix_users_email", db.func.{fn}(User.email))
    commands:
      - init
      - migrate: create users
      - upgrade
"""


@pytest.mark.needs_server
def test_two_scenarios_differing_only_in_an_index_expression_get_different_schema_snapshots(
    harness_stack, harness_server
):
    observed = {}
    for fn in ("lower", "upper"):
        run, observed[fn] = _run(INDEXED.format(id=f"index_{fn}", fn=fn), harness_stack, harness_server)
        assert run.error is None, run.error
    lower, upper = (observed[fn]["steps"][0]["schema"] for fn in ("lower", "upper"))
    assert schema_diff(lower, upper) == [
        "tables.users.indexes.ix_users_email: "
        "CREATE INDEX ix_users_email ON public.users USING btree (lower((email)::text)) before, "
        "CREATE INDEX ix_users_email ON public.users USING btree (upper((email)::text)) after"
    ]


# A database that predates Alembic: `legacy` exists (made by SQL) and the models declare it as
# it is, so autogenerate creates only `owners`; `downgrade base` rightly leaves `legacy` alone.
ADOPTED = """\
id: legacy_table_by_sql
title: a table made by SQL before the first migration
steps:
  - name: legacy made by SQL, owners by a migration
    models: |
      class Legacy(db.Model):
          __tablename__ = "legacy"

          id = db.Column(db.Integer, primary_key=True, autoincrement=False)
          note = db.Column(db.Text)


      class Owner(db.Model):
          __tablename__ = "owners"

          id = db.Column(db.Integer, primary_key=True)
    commands:
      - init
      - sql: CREATE TABLE legacy (id integer PRIMARY KEY, note text)
      - migrate: create owners
      - upgrade
"""


@pytest.mark.needs_server
def test_a_table_made_by_sql_before_the_first_migration_is_the_baseline_and_the_roundtrip_holds(
    harness_stack, harness_server
):
    run, observed = _run(ADOPTED, harness_stack, harness_server)
    assert run.error is None, run.error
    assert run.scenario.known_failures == {}
    ops = observed["steps"][0]["migration"]["revisions"][0]["upgrade_ops"]
    assert [(op["op"], op["table"]) for op in ops] == [("create_table", "owners")]
    assert observed["invariants"] == {"autogenerate_clean": "holds", "roundtrip": "holds"}
    # the same scenario with a table the baseline did not have: the downgrade must remove it
    # (made after the first upgrade, so not in the baseline; a no-op upgrade ends the scenario)
    leaky = ADOPTED + "      - sql: CREATE TABLE stray (id int)\n      - upgrade\n"
    leaky = leaky.replace("id: legacy_table_by_sql", "id: stray_table_by_sql")
    run, observed = _run(leaky, harness_stack, harness_server)
    assert run.error is None, run.error
    assert observed["invariants"]["roundtrip"] == (
        "fails: downgrade to base did not restore the baseline: tables.stray: only at base: "
        "{'columns': [{'name': 'id', 'type': 'integer', 'nullable': True}], 'constraints': {}, 'indexes': {}}"
    )


RICH = """
CREATE SCHEMA billing;
COMMENT ON SCHEMA billing IS 'invoices live here';
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok';
CREATE DOMAIN positive AS integer NOT NULL CHECK (VALUE > 0);
CREATE TYPE pair AS (a integer, b text);
CREATE TYPE span AS RANGE (subtype = integer);
CREATE TABLE people (
    id integer GENERATED BY DEFAULT AS IDENTITY (START WITH 10 INCREMENT BY 5) PRIMARY KEY,
    email text COLLATE "C" NOT NULL,
    score positive,
    feeling mood DEFAULT 'ok',
    doubled integer GENERATED ALWAYS AS (score * 2) STORED,
    EXCLUDE USING btree (score WITH =) DEFERRABLE INITIALLY DEFERRED
);
COMMENT ON COLUMN people.email IS 'where to write';
ALTER TABLE people ADD CONSTRAINT people_email_check CHECK (email <> '') NOT VALID;
CREATE INDEX people_lower_email ON people USING hash (lower(email));
CREATE INDEX people_email_inc ON people (email text_pattern_ops) INCLUDE (score) WHERE score > 1;
CREATE SEQUENCE billing.numbers AS bigint START 100 INCREMENT 10 CYCLE;
CREATE VIEW happy_people AS SELECT id, email FROM people WHERE feeling = 'happy';
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER people_touch BEFORE UPDATE ON people FOR EACH ROW EXECUTE FUNCTION touch();
ALTER TABLE people ENABLE ROW LEVEL SECURITY;
CREATE POLICY mine ON people FOR SELECT USING (email = current_user);
"""


@pytest.mark.needs_server
def test_the_catalog_view_shows_what_the_inspector_cannot(harness_server):
    with scratch_database(harness_server, "catalog_view") as url:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql(RICH)
        engine.dispose()
        view = catalog_schema(url)
    assert view["schemas"] == {"billing": "invoices live here", "public": ANY}
    assert view["types"] == {
        "mood": {"kind": "enum", "labels": ["sad", "meh", "ok", "happy"]},
        "pair": {"kind": "composite", "attributes": ["a integer", "b text"]},
        "positive": {
            "kind": "domain",
            "type": "integer",
            "nullable": False,
            "constraints": ["positive_check: CHECK (VALUE > 0)"],
        },
        "span": {"kind": "range", "subtype": "integer"},
    }
    assert view["sequences"]["billing.numbers"] == {
        "type": "bigint",
        "start": 100,
        "increment": 10,
        "min": 1,
        "max": 9223372036854775807,
        "cache": 1,
        "cycle": True,
    }
    assert view["sequences"]["people_id_seq"]["owned_by"] == "people.id (identity)"
    assert view["sequences"]["people_id_seq"]["start"] == 10
    people = view["tables"]["people"]
    assert people["columns"] == [
        {"name": "id", "type": "integer", "nullable": False, "identity": "by default"},
        {"name": "email", "type": "text", "nullable": False, "collation": "C", "comment": "where to write"},
        {"name": "score", "type": "positive", "nullable": True},
        {"name": "feeling", "type": "mood", "nullable": True, "default": "'ok'::mood"},
        {
            "name": "doubled",
            "type": "integer",
            "nullable": True,
            "generated": "((score)::integer * 2) STORED",
        },
    ]
    assert people["constraints"] == {
        "people_email_check": "CHECK (email <> ''::text) NOT VALID",
        "people_pkey": "PRIMARY KEY (id)",
        "people_score_excl": "EXCLUDE USING btree (score WITH =) DEFERRABLE INITIALLY DEFERRED",
    }
    assert people["indexes"] == {
        "people_email_inc": "CREATE INDEX people_email_inc ON public.people USING btree "
        "(email text_pattern_ops) INCLUDE (score) WHERE ((score)::integer > 1)",
        "people_lower_email": "CREATE INDEX people_lower_email ON public.people USING hash (lower(email))",
    }
    assert people["triggers"] == {
        "people_touch": "CREATE TRIGGER people_touch BEFORE UPDATE ON people "
        "FOR EACH ROW EXECUTE FUNCTION touch()"
    }
    assert people["row_security"] is True
    assert people["policies"] == {"mine": "PERMISSIVE FOR SELECT USING ((email = CURRENT_USER))"}
    assert view["views"]["happy_people"]["kind"] == "view"
    assert "WHERE people.feeling = 'happy'::mood" in view["views"]["happy_people"]["definition"]
    assert list(view["functions"]) == ["touch()"]
    assert "RETURN NEW" in view["functions"]["touch()"]
    assert view["alembic_version"] is None


@pytest.mark.needs_server
def test_the_harness_reads_a_database_through_one_connection_closed_before_the_drop(harness_server):
    """Reads share one server process (a login each cost a process, a SCRAM exchange and cold
    caches); it holds no transaction between reads, and it is gone before the database is dropped."""
    with scratch_database(harness_server, "one_connection") as url:
        pids = []
        for _ in range(3):
            with database.connection(url) as conn:
                pids.append(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar())
        assert len(set(pids)) == 1
        admin = sa.create_engine(harness_server.url, poolclass=sa.pool.NullPool)
        try:
            with admin.connect() as conn:
                state = conn.execute(
                    sa.text("SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": pids[0]}
                ).scalar()
        finally:
            admin.dispose()
        assert state == "idle"  # not "idle in transaction": it holds no lock while a command runs
    assert url.database not in {engine.url.database for engine in database._ENGINES.values()}
