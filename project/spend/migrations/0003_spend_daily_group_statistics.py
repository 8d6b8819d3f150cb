from django.db import migrations


class Migration(migrations.Migration):
    """How many groups the Usage page's grouping of a range makes: PostgreSQL, guessing from
    each column alone, expected twenty times too many and sorted the month's rows instead
    of hashing them (2.5 times slower). Filled in by the next ANALYZE."""

    dependencies = [("spend", "0002_budget_meter")]

    operations = [
        migrations.RunSQL(
            sql="CREATE STATISTICS spend_daily_dims (ndistinct) "
                "ON person_id, assistant_id, connection_id, feature, model FROM spend_spenddaily",
            reverse_sql="DROP STATISTICS spend_daily_dims",
        ),
    ]
