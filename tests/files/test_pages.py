"""The Files page, previews, downloads and the upload endpoint the browser's XHR posts to."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from project.files.models import File
from project.files.services import file_upload
from tests.factories import make_connection, make_file

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _upload(team, connection, data: bytes, name: str, purpose: str = "user_data") -> File:
    return file_upload(team=team, connection=connection, purpose=purpose, name=name, chunks=[data], actor=None)


def test_the_list_shows_the_teams_files_and_storage(team, connection, owner_client) -> None:
    _upload(team, connection, b'{"custom_id": "1"}\n', "input.jsonl", "batch")
    _upload(team, connection, PNG, "cat.png", "vision")

    page = owner_client.get(reverse("file_list")).content.decode()

    assert "input.jsonl" in page and "Batch input" in page and "cat.png" in page and "Vision" in page
    assert "in 2 files" in page and "Batch input: 1" in page and "Vision: 1" in page
    assert "unused" in page and "On the provider" in page


def test_the_list_filters_by_purpose_and_connection_and_sorts(team, connection, owner_client) -> None:
    other = make_connection(team, name="Other")
    make_file(team, connection=other, name="b-other.txt", purpose="user_data")
    _upload(team, connection, b"x", "a-mine.txt")
    _upload(team, connection, b'{"a": 1}\n', "c-batch.jsonl", "batch")

    by_purpose = owner_client.get(reverse("file_list"), {"purpose": "batch"}).content.decode()
    assert "c-batch.jsonl" in by_purpose and "a-mine.txt" not in by_purpose
    by_connection = owner_client.get(reverse("file_list"), {"connection": other.pk}).content.decode()
    assert "b-other.txt" in by_connection and "a-mine.txt" not in by_connection
    by_name = owner_client.get(reverse("file_list"), {"sort": "name"}, headers={"HX-Request": "true"}).content.decode()
    assert by_name.index("a-mine.txt") < by_name.index("b-other.txt") < by_name.index("c-batch.jsonl")
    assert "<html" not in by_name  # the htmx answer is the table fragment only


def test_the_list_paginates(team, connection, owner_client, settings) -> None:
    settings.FILES_PAGE_SIZE = 2
    for i in range(5):
        make_file(team, connection=connection, name=f"f{i}.txt")
    first = owner_client.get(reverse("file_list"), {"sort": "name"}).content.decode()
    third = owner_client.get(reverse("file_list"), {"sort": "name", "page": 3}).content.decode()
    assert "f0.txt" in first and "f2.txt" not in first and "Page 1 of 3" in first
    assert "f4.txt" in third and "f0.txt" not in third


def test_another_teams_files_are_not_listed(team, other_team, owner_client) -> None:
    make_file(other_team, name="secret-of-globex.txt")
    assert "secret-of-globex.txt" not in owner_client.get(reverse("file_list")).content.decode()


def test_it_previews_the_first_lines_of_a_jsonl_file(team, connection, owner_client) -> None:
    lines = [json.dumps({"custom_id": str(i), "body": {}}) for i in range(30)]
    record = _upload(team, connection, ("\n".join(lines) + "\n").encode(), "big.jsonl", "batch")

    page = owner_client.get(reverse("file_detail", args=[record.pk])).content.decode()

    assert "custom_id&quot;: &quot;9&quot;" in page and "custom_id&quot;: &quot;10&quot;" not in page
    assert "The first lines only" in page


def test_it_previews_csv_as_a_table_and_escapes_html(team, connection, owner_client) -> None:
    record = _upload(team, connection, b"question,answer\n<script>alert(1)</script>,42\n", "qa.csv")
    page = owner_client.get(reverse("file_detail", args=[record.pk])).content.decode()
    assert "<th>question</th>" in page and "<td>42</td>" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_it_shows_a_text_excerpt(team, connection, owner_client) -> None:
    record = _upload(team, connection, b"Plain words for the model.\n" * 400, "notes.txt")
    page = owner_client.get(reverse("file_detail", args=[record.pk])).content.decode()
    assert "data-preview-text" in page and "Plain words for the model." in page


def test_an_image_is_served_inline_with_its_sniffed_type(team, connection, owner_client) -> None:
    record = _upload(team, connection, PNG, "cat.png", "vision")
    assert f'src="/files/{record.pk}/image/"' in owner_client.get(reverse("file_detail", args=[record.pk])).content.decode()

    response = owner_client.get(reverse("file_image", args=[record.pk]))

    assert response["Content-Type"] == "image/png" and response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert b"".join(response.streaming_content) == PNG


def test_html_named_as_an_image_is_never_served_inline(team, connection, owner_client) -> None:
    record = _upload(team, connection, b"<html><script>alert(1)</script></html>", "evil.png")
    assert record.mime_type == "application/octet-stream"
    assert owner_client.get(reverse("file_image", args=[record.pk])).status_code == 404
    download = owner_client.get(reverse("file_download", args=[record.pk]))
    assert download["Content-Type"] == "application/octet-stream"
    assert download["Content-Disposition"].startswith("attachment")


def test_it_downloads_the_original(team, connection, owner_client) -> None:
    data = b"id,value\n" + b"1,2\n" * 1000
    record = _upload(team, connection, data, "values.csv")
    response = owner_client.get(reverse("file_download", args=[record.pk]))
    assert b"".join(response.streaming_content) == data
    assert 'filename="values.csv"' in response["Content-Disposition"]


def test_the_upload_endpoint_answers_the_browser_in_json(team, connection, owner_client) -> None:
    upload = SimpleUploadedFile("train.jsonl", b'{"messages": []}\n')
    response = owner_client.post(reverse("file_upload"), {"connection": connection.pk, "purpose": "fine-tune", "file": upload},
                                 headers={"Accept": "application/json"})
    assert response.status_code == 200
    reply = response.json()
    assert reply["ok"] and reply["url"] == reverse("file_detail", args=[reply["file_id"]])


@pytest.mark.parametrize(
    ("name", "purpose", "data", "message"),
    [
        ("train.jsonl", "fine-tune", b"not json\n", "line 1: not valid JSON"),
        ("photo.jpg", "vision", b"GIF8 but not really", "PNG, JPEG, GIF or WebP"),
        ("empty.txt", "user_data", b"", "empty"),
    ],
)
def test_the_upload_endpoint_explains_a_rejection(team, connection, owner_client, name, purpose, data, message) -> None:
    upload = SimpleUploadedFile(name, data)
    response = owner_client.post(reverse("file_upload"), {"connection": connection.pk, "purpose": purpose, "file": upload},
                                 headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not File.objects.exists()


def test_the_upload_endpoint_refuses_another_teams_connection(team, other_team, owner_client) -> None:
    foreign = make_connection(other_team)
    upload = SimpleUploadedFile("a.txt", b"x")
    response = owner_client.post(reverse("file_upload"), {"connection": foreign.pk, "purpose": "user_data", "file": upload},
                                 headers={"Accept": "application/json"})
    assert response.status_code == 400 and "connection" in response.json()["error"]


def test_an_oversize_body_is_refused_before_it_is_read(team, connection, owner_client, settings) -> None:
    settings.FILES_MAX_BYTES = 10
    upload = SimpleUploadedFile("big.txt", b"x" * (2 * 1024 * 1024))
    response = owner_client.post(reverse("file_upload"), {"connection": connection.pk, "purpose": "user_data", "file": upload},
                                 headers={"Accept": "application/json"})
    assert response.status_code == 413 and "big.txt is larger than 10" in response.json()["error"]


def test_a_viewer_sees_the_files_but_no_upload_or_delete(team, connection) -> None:
    from project.teams.models import Role
    from tests.conftest import client_for
    from tests.factories import add_member

    make_file(team, connection=connection, name="shared.txt")
    viewer = client_for(add_member(team, role=Role.VIEWER).user)
    page = viewer.get(reverse("file_list")).content.decode()
    assert "shared.txt" in page
    assert 'id="upload-form"' not in page and ">Delete<" not in page and "Sync with provider" not in page
