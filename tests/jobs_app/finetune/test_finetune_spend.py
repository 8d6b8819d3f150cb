"""Fine-tuning's spend: the trained tokens at the training price reach the ledger once when
the job ends, and stay when the job is deleted; a used-up hard limit refuses a new job
before anything is sent."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from jobs_app.finetune.models import FineTuneJob, JobStatus
from jobs_app.finetune.services import finetune_job_create, finetune_job_refresh
from jobs_app.finetune.sync import sync_connection
from project.files.models import File
from project.providers.model_facts import model_facts
from project.spend.budgets import budget_save
from project.spend.ledger import SpendLine, spend_record
from project.spend.models import Feature, Pricing, SpendEntry, SpendReservation
from project.spend.reconcile import reconcile
from project.teams.templatetags.display import format_usd
from tests.conftest import client_for
from tests.factories import make_dataset
from tests.jobs_app.finetune.conftest import sandbox_connection, wait_until

pytestmark = pytest.mark.django_db

OPTIONS: dict[str, Any] = {"validation_dataset": None, "base_model": "gpt-4.1-mini", "method": "supervised",
                           "hyperparameters": {}, "suffix": "demo", "seed": 7, "metadata": {}}


def test_training_is_billed_once_at_the_training_price_and_outlives_the_job(team, owner, sandbox_url) -> None:
    connection = sandbox_connection(team, sandbox_url)
    budget_save(team=team, connection=None, amount_usd=Decimal("100"), thresholds=[], hard_limit=True, actor=owner)
    job = finetune_job_create(team=team, connection=connection, dataset=make_dataset(team), actor=owner, **OPTIONS)

    def ended() -> bool:
        sync_connection(connection, force=True)
        job.refresh_from_db()
        return job.is_terminal and job.finalized_at is not None

    wait_until(ended)
    assert job.status == JobStatus.SUCCEEDED and job.trained_tokens
    finetune_job_refresh(job=job)  # a replayed webhook: nothing billed twice
    entry = SpendEntry.objects.get(team=team, source_kind="finetune_job")
    assert (entry.feature, entry.pricing, entry.trained_tokens, entry.input_tokens, entry.person_id) == (
        Feature.FINE_TUNING, Pricing.TRAINING, job.trained_tokens, 0, owner.pk)
    price = model_facts("gpt-4.1-mini").price("training")
    assert entry.cost_usd == (Decimal(job.trained_tokens) * price / 1_000_000).quantize(Decimal("0.000001"))  # type: ignore[operator]
    assert not SpendReservation.objects.exists()  # settled
    page = client_for(owner).get(f"/fine-tuning/jobs/{job.pk}/").content.decode()
    assert f"<dd data-billed>{format_usd(entry.cost_usd)}</dd>" in page
    # The provider's costs include the training too: reconciliation shows no difference.
    day = entry.occurred_at.astimezone(UTC).date()
    result = reconcile(team=team, connection=connection, start=day, end=day)
    [row] = [r for r in result.rows if r.model == "gpt-4.1-mini"]
    assert not result.error and row.provider.cost == entry.cost_usd and row.matches
    FineTuneJob.objects.filter(pk=job.pk).delete()
    assert SpendEntry.objects.filter(pk=entry.pk).exists()


def test_a_used_up_hard_limit_refuses_a_job_before_anything_is_sent(team, owner, sandbox_url) -> None:
    connection = sandbox_connection(team, sandbox_url)
    dataset = make_dataset(team)
    budget_save(team=team, connection=connection, amount_usd=Decimal("1"), thresholds=[], hard_limit=True, actor=owner)
    spend_record(SpendLine(team_id=team.pk, feature=Feature.CHAT, model="gpt-4.1-mini", source_kind="run", key="r",
                           connection_id=connection.pk, input_tokens=2_500_000))
    form = {"connection": connection.pk, "dataset": dataset.pk, "base_model": "gpt-4.1-mini", "method": "supervised",
            "n_epochs": "1"}
    page = " ".join(client_for(owner).post(reverse("finetune_job_create"), form).content.decode().split())
    assert "This fine-tuning job was not started: the connection" in page and "used up" in page
    assert not FineTuneJob.objects.exists() and not File.objects.filter(purpose="fine-tune").exists()
    assert not SpendReservation.objects.exists()
