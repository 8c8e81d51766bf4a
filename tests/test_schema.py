"""The complete schema view and the roundtrip judged against the baseline.

The pure tests pin the comparison and its message; the others run scenarios on the real stack
and server: an index expression the inspector cannot see must change the schema snapshot, and a
table the scenario made by SQL before its first migration is part of the baseline, not a leftover.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import session_for

from harness.observe.normalise import observe
from harness.observe.schema import schema_diff, summarise_diff
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
