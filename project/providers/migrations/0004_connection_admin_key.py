from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("providers", "0003_merge_engine_and_capabilities"),
    ]

    operations = [
        migrations.AddField(
            model_name="providerconnection",
            name="admin_key_encrypted",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="providerconnection",
            name="admin_key_last4",
            field=models.CharField(blank=True, max_length=4),
        ),
    ]
