"""A batch's input file is in use while the batch runs: the file library names the batch
and refuses to delete the file; once the batch has ended, the file may go."""

from __future__ import annotations

from typing import cast

import pytest

from jobs_app.batches.models import Batch, BatchGroup, BatchStatus
from project.files.services import FileInUse, file_blockers, file_delete
from tests.factories import make_batch_group, make_file

pytestmark = pytest.mark.django_db


def test_a_running_batchs_input_file_cannot_be_deleted_and_says_why(team, owner) -> None:
    group = cast(BatchGroup, make_batch_group(team))
    part = Batch.objects.get(group=group)
    input_file = make_file(team, connection=part.connection, name="input.jsonl", purpose="batch")
    Batch.objects.filter(pk=part.pk).update(input_file=input_file, status=BatchStatus.FINALIZING, remote_id="batch_x")

    uses, active = file_blockers(file=input_file)
    assert [u.kind for u in uses] == ["Batch"] and len(active) == 1
    assert "input" in active[0].label and active[0].url == f"/batches/{group.pk}/"
    with pytest.raises(FileInUse):
        file_delete(team=team, file=input_file, actor=owner)

    Batch.objects.filter(pk=part.pk).update(status=BatchStatus.COMPLETED)
    assert file_blockers(file=input_file)[1] == []
