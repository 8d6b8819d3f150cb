"""`make run`'s own choices: a sandbox demo that does not make people wait."""

from __future__ import annotations

from devtools.run import sandbox_defaults


def test_make_run_starts_the_sandbox_on_a_fast_clock_unless_told_otherwise() -> None:
    env: dict[str, str] = {}
    sandbox_defaults(env)
    assert float(env["SANDBOX_TIME_SCALE"]) >= 60  # a 4.5-minute fine-tune takes under 5 s
    chosen = {"SANDBOX_TIME_SCALE": "1"}
    sandbox_defaults(chosen)
    assert chosen["SANDBOX_TIME_SCALE"] == "1"


def test_the_test_command_knows_a_server_without_pgvector_from_one_with_it() -> None:
    import os

    from devtools.services import lacks_pgvector

    # The tests' own server has pgvector: the test command swaps a server without it for the embedded one.
    assert lacks_pgvector(os.environ["DATABASE_URL"]) is False
    # An unreachable server is not judged (the tests report it themselves).
    assert lacks_pgvector("postgresql://nobody@127.0.0.1:1/none") is False
