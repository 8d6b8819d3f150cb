"""The webhooks models, made by jobs_app's migrations before they had an app of their own:
only the migration state is created here (the tables exist, with their data); content types
follow the models so admin history and permissions stay attached."""


import django.db.models.deletion
from django.db import migrations, models

from project.migration_operations import content_types_moved


MODELS = ['webhookdelivery']


DATABASE_OPERATIONS = [content_types_moved(MODELS, from_label="jobs_app", to_label="webhooks")]


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('jobs_app', '0005_batch_submitting_since'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('providers', '0001_initial'),
    ]

    operations = [migrations.SeparateDatabaseAndState(database_operations=DATABASE_OPERATIONS, state_operations=[
        migrations.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('webhook_id', models.CharField(max_length=200)),
                ('event_type', models.CharField(max_length=100)),
                ('object_id', models.CharField(blank=True, max_length=200)),
                ('received_at', models.DateTimeField(auto_now_add=True)),
                ('connection', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='webhook_deliveries', to='providers.providerconnection')),
            ],
            options={
                'db_table': 'jobs_app_webhookdelivery',
                'ordering': ['-received_at'],
                'constraints': [models.UniqueConstraint(fields=('connection', 'webhook_id'), name='webhook_delivery_once')],
            },
        ),
    ])]
