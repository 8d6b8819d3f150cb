"""Files, batches and fine-tuning say plainly when a connection's server has no such API
(issue #15, item 8), from what "Test connection" probed, instead of failing on submit."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from jobs_app.batches.models import BatchGroup
from jobs_app.finetune.models import FineTuneJob
from project.files.models import File
from project.providers.capabilities import capabilities_probe
from tests.compatible import llamacpp
from tests.factories import make_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def local_llama(team, sandbox_url):
    connection = llamacpp(team, sandbox_url, name="Local llama")
    capabilities_probe(connection=connection, names=["files", "batches", "fine_tuning"])
    return connection


def test_the_files_page_says_the_server_has_no_files_api_and_an_upload_there_is_refused(owner_client, local_llama) -> None:
    page = owner_client.get(reverse("file_list")).content.decode()
    assert "Local llama: This server has no Files API" in page
    answer = owner_client.post(reverse("file_upload"), {
        "connection": local_llama.pk, "purpose": "user_data", "file": SimpleUploadedFile("a.txt", b"hello")})
    assert answer.status_code == 302
    assert "This server has no Files API" in owner_client.get(answer["Location"]).content.decode()
    assert not File.objects.exists()


def test_the_fine_tuning_form_says_the_server_cannot_fine_tune_and_sends_nothing(owner_client, team,
                                                                                local_llama) -> None:
    dataset = make_dataset(team)
    url = reverse("finetune_job_create") + f"?connection={local_llama.pk}&dataset={dataset.pk}"
    page = owner_client.get(url).content.decode()
    assert "Local llama: This server has no fine-tuning API. Choose another connection to fine-tune." in page
    assert "About <strong>$" not in page and "on gpt-4.1-mini" not in page
    form: dict[str, Any] = {"connection": local_llama.pk, "dataset": dataset.pk, "base_model": "gpt-4.1-mini",
                            "method": "supervised", "n_epochs": "auto", "batch_size": "auto",
                            "learning_rate_multiplier": "auto", "beta": "auto", "suffix": "", "seed": "",
                            "metadata": ""}
    answer = owner_client.post(reverse("finetune_job_create"), form)
    assert answer.status_code == 200 and "This field is required" not in answer.content.decode()
    assert not FineTuneJob.objects.exists()
    assert "has no fine-tuning API" in owner_client.get(
        reverse("finetune_job_import") + f"?connection={local_llama.pk}").content.decode()


def test_the_batch_pages_say_the_server_has_no_batch_api_and_refuse_it(owner_client, local_llama) -> None:
    assert "Local llama: This server has no Batch API." in owner_client.get(reverse("batch_new")).content.decode()
    assert "This server has no Batch API." in owner_client.get(reverse("batch_from_threads")).content.decode()
    answer = owner_client.post(reverse("batch_new"), {
        "connection": local_llama.pk, "endpoint": "/v1/chat/completions", "source": "csv", "name": "",
        "template": "Translate {word} to French.", "model": "gpt-4.1-mini", "instructions": "", "response_format": "",
        "assistant": "", "file": SimpleUploadedFile("words.csv", b"word\ncat\n", "text/csv")})
    assert answer.status_code == 200 and "This server has no Batch API." in answer.content.decode()
    assert not BatchGroup.objects.exists()


def test_a_connection_never_probed_is_not_said_to_lack_anything(owner_client, team, sandbox_url) -> None:
    llamacpp(team, sandbox_url, name="Local llama")
    assert "data-lacking" not in owner_client.get(reverse("batch_new")).content.decode()
    assert "data-lacking" not in owner_client.get(reverse("file_list")).content.decode()


def test_a_submit_to_a_server_never_probed_is_refused_in_words_not_with_a_404(owner_client, team,
                                                                              sandbox_url) -> None:
    connection = llamacpp(team, sandbox_url, name="Local llama")
    answer = owner_client.post(reverse("batch_new"), {
        "connection": connection.pk, "endpoint": "/v1/chat/completions", "source": "csv", "name": "",
        "template": "Translate {word} to French.", "model": "gpt-4.1-mini", "instructions": "", "response_format": "",
        "assistant": "", "file": SimpleUploadedFile("words.csv", b"word\ncat\n", "text/csv")})
    assert "This server has no Batch API." in answer.content.decode()
    assert not BatchGroup.objects.exists()
    page = owner_client.get(reverse("finetune_job_create") + f"?connection={connection.pk}").content.decode()
    assert "This server has no fine-tuning API." in page


def test_an_azure_connection_with_a_wrong_address_says_what_to_check(team, sandbox_url) -> None:
    from project.providers.models import ProviderKind
    from project.providers.services import connection_test
    from tests.factories import make_connection

    azure = make_connection(team, base_url=sandbox_url.removesuffix("/v1") + "/nowhere", kind=ProviderKind.AZURE,
                            api_key="k-1234")
    result = connection_test(connection=azure)
    assert not result.ok and "(404)" in result.message
    assert "Check the resource endpoint (https://<resource>.openai.azure.com" in result.message
