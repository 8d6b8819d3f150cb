"""What people read is words: the activity feed, costs."""

from __future__ import annotations

from decimal import Decimal

import pytest

from project.teams.templatetags.display import format_usd
from tests.factories import make_assistant


def test_the_activity_feed_says_what_happened_in_words(owner_client, team, owner) -> None:
    from project.teams.services import audit_record

    make_assistant(team, name="Helpdesk", actor=owner)
    # As chat records it (assistants_app.services.model_threads_start): the thread's id as target.
    audit_record(team=team, actor=owner, action="thread.start_with_model", target="4", model="gpt-4.1-mini")
    page = owner_client.get("/").content.decode()
    assert "created the assistant Helpdesk" in page
    assert "started a chat with gpt-4.1-mini" in page
    assert "thread.start_with_model" not in page and "assistant.create" not in page and "<td>4</td>" not in page


@pytest.mark.parametrize(("amount", "shown"), [
    (Decimal("0.000061"), "$0.000061"), (Decimal("1.75"), "$1.75"), (Decimal("0"), "$0.00"),
    (Decimal("0.308625"), "$0.308625"), (Decimal("12.5000004"), "$12.50"), (0.0000001, "under $0.000001"),
    (None, ""),
])
def test_one_cost_format(amount: object, shown: str) -> None:
    assert format_usd(amount) == shown


def test_an_event_missing_a_detail_falls_back_to_the_short_sentence() -> None:
    from project.teams.activity import event_sentence
    from project.teams.models import AuditEvent

    assert event_sentence(AuditEvent(action="assistant.create", details={})) == "created an assistant"
    assert event_sentence(AuditEvent(action="assistant.create", details={"name": ""})) == "created an assistant"
    assert event_sentence(AuditEvent(action="member.role_changed", target="ann", details={"old": "viewer"})) == (
        "changed ann's role")
    assert event_sentence(AuditEvent(action="something.new_thing", details={})) == "something new thing"
