"""One File row per provider address and remote id, whichever connection saw it.

Before, each connection had its own rows, so two connections to one account imported
every file twice. Existing duplicates are merged into the row made first: every
foreign key pointing at a duplicate (batches, fine-tune results, uploads…) is moved to
the kept row, found through PostgreSQL's catalog so the file library names no feature.
"""

from urllib.parse import urlsplit

from django.db import migrations, models


def _files_address(base_url):
    # A copy of project.providers.models.files_address_of as it was when this ran.
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError:
        return f"://{base_url.lower()}:None"
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".").lower()
    port = port or ({"https": 443, "http": 80}.get(scheme))
    path = parts.path.rstrip("/") if scheme else ""
    return f"{scheme}://{host}:{port}{path}"


def _referencing_columns(cursor, table):
    cursor.execute(
        """
        SELECT rel.relname, att.attname
        FROM pg_constraint con
        JOIN pg_class rel ON rel.oid = con.conrelid
        JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = ANY (con.conkey)
        WHERE con.contype = 'f' AND con.confrelid = %s::regclass
        """,
        [table],
    )
    return cursor.fetchall()


def merge_duplicates(apps, schema_editor):
    File = apps.get_model("files", "File")
    ProviderConnection = apps.get_model("providers", "ProviderConnection")
    addresses = {c.pk: _files_address(c.base_url) for c in ProviderConnection.objects.all()}
    for file in File.objects.all().only("pk", "connection_id"):
        File.objects.filter(pk=file.pk).update(provider_address=addresses[file.connection_id])
    table = File._meta.db_table
    groups = (File.objects.values("team_id", "provider_address", "remote_id")
              .annotate(rows=models.Count("pk")).filter(rows__gt=1))
    with schema_editor.connection.cursor() as cursor:
        columns = _referencing_columns(cursor, table)
        for group in groups:
            rows = list(File.objects.filter(team_id=group["team_id"], provider_address=group["provider_address"],
                                            remote_id=group["remote_id"]).order_by("created_at", "pk"))
            # Keep the oldest row with a local copy (else the oldest); the others point at it.
            kept = next((row for row in rows if row.content), rows[0])
            others = [row.pk for row in rows if row.pk != kept.pk]
            for relation, column in columns:
                cursor.execute(
                    f'UPDATE "{relation}" SET "{column}" = %s WHERE "{column}" = ANY(%s)',  # noqa: S608 - catalog names
                    [kept.pk, others],
                )
            File.objects.filter(pk__in=others).delete()
        # The moved foreign keys are checked now, not at commit: PostgreSQL refuses the
        # ALTER TABLE that adds the constraint while checks are pending.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):

    dependencies = [
        ("files", "0003_staged_upload_requests"),
        ("providers", "0001_initial"),
        ("teams", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="file",
            name="provider_address",
            field=models.CharField(default="", editable=False, max_length=600),
            preserve_default=False,
        ),
        migrations.RemoveConstraint(model_name="file", name="file_unique_remote_id_per_connection"),
        migrations.RunPython(merge_duplicates, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="file",
            constraint=models.UniqueConstraint(fields=("team", "provider_address", "remote_id"),
                                               name="file_once_per_provider_address"),
        ),
    ]
