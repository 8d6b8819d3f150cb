"""The finetune models, made by jobs_app's migrations before they had an app of their own:
only the migration state is created here (the tables exist, with their data); content types
follow the models so admin history and permissions stay attached."""


import django.db.models.deletion
import jobs_app.finetune.models
from django.conf import settings
from django.db import migrations, models

from project.migration_operations import content_types_moved


MODELS = ['dataset', 'finetunejob', 'finetuneevent', 'finetunecheckpoint', 'metricpoint', 'finetunesyncstate']


DATABASE_OPERATIONS = [content_types_moved(MODELS, from_label="jobs_app", to_label="finetune")]


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('jobs_app', '0005_batch_submitting_since'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('files', '0003_staged_upload_requests'),
        ('providers', '0001_initial'),
        ('teams', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.SeparateDatabaseAndState(database_operations=DATABASE_OPERATIONS, state_operations=[
        migrations.CreateModel(
            name='Dataset',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=255)),
                ('method', models.CharField(choices=[('supervised', 'Supervised (chat)'), ('dpo', 'DPO (preference pairs)')], default='supervised', max_length=20)),
                ('model_id', models.CharField(max_length=200)),
                ('content', models.FileField(max_length=300, upload_to=jobs_app.finetune.models._dataset_path)),
                ('bytes', models.BigIntegerField(default=0)),
                ('sha256', models.CharField(max_length=64)),
                ('is_validation', models.BooleanField(default=False)),
                ('status', models.CharField(choices=[('pending', 'Waiting to be validated'), ('validating', 'Validating'), ('valid', 'Valid'), ('invalid', 'Has errors')], default='pending', max_length=20)),
                ('bytes_read', models.BigIntegerField(default=0)),
                ('report', models.JSONField(blank=True, default=dict)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='finetune_datasets', to='teams.team')),
                ('validation_dataset', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='training_dataset', to='finetune.dataset')),
            ],
            options={
                'db_table': 'jobs_app_dataset',
                'ordering': ['-created_at'],
            },
        ),
        migrations.CreateModel(
            name='FineTuneJob',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('remote_id', models.CharField(max_length=200)),
                ('base_model', models.CharField(max_length=200)),
                ('method', models.CharField(default='supervised', max_length=20)),
                ('hyperparameters', models.JSONField(blank=True, default=dict)),
                ('suffix', models.CharField(blank=True, max_length=64)),
                ('seed', models.BigIntegerField(blank=True, null=True)),
                ('metadata', models.JSONField(blank=True, default=dict)),
                ('status', models.CharField(choices=[('validating_files', 'Validating files'), ('queued', 'Queued'), ('running', 'Running'), ('paused', 'Paused'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='validating_files', max_length=20)),
                ('trained_tokens', models.BigIntegerField(blank=True, null=True)),
                ('fine_tuned_model', models.CharField(blank=True, max_length=300)),
                ('error', models.JSONField(blank=True, null=True)),
                ('step', models.IntegerField(default=0)),
                ('total_steps', models.IntegerField(default=0)),
                ('estimated_finish', models.DateTimeField(blank=True, null=True)),
                ('remote_created_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('training_file_remote_id', models.CharField(blank=True, max_length=200)),
                ('validation_file_remote_id', models.CharField(blank=True, max_length=200)),
                ('estimated_cost_usd', models.DecimalField(blank=True, decimal_places=6, max_digits=14, null=True)),
                ('last_event_id', models.CharField(blank=True, max_length=200)),
                ('events_synced_at', models.DateTimeField(blank=True, null=True)),
                ('finalized_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('synced_at', models.DateTimeField(blank=True, null=True)),
                ('connection', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='finetune_jobs', to='providers.providerconnection')),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('dataset', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='jobs', to='finetune.dataset')),
                ('result_file', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='files.file')),
                ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='finetune_jobs', to='teams.team')),
            ],
            options={
                'db_table': 'jobs_app_finetunejob',
                'ordering': ['-created_at'],
            },
        ),
        migrations.CreateModel(
            name='FineTuneEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('remote_id', models.CharField(max_length=200)),
                ('created_at', models.DateTimeField()),
                ('level', models.CharField(default='info', max_length=20)),
                ('message', models.TextField()),
                ('type', models.CharField(default='message', max_length=20)),
                ('data', models.JSONField(blank=True, null=True)),
                ('job', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='events', to='finetune.finetunejob')),
            ],
            options={
                'db_table': 'jobs_app_finetuneevent',
                'ordering': ['created_at', 'id'],
            },
        ),
        migrations.CreateModel(
            name='FineTuneCheckpoint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('remote_id', models.CharField(max_length=200)),
                ('step', models.IntegerField()),
                ('model_name', models.CharField(max_length=300)),
                ('metrics', models.JSONField(blank=True, default=dict)),
                ('created_at', models.DateTimeField()),
                ('job', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='checkpoints', to='finetune.finetunejob')),
            ],
            options={
                'db_table': 'jobs_app_finetunecheckpoint',
                'ordering': ['-step'],
            },
        ),
        migrations.CreateModel(
            name='FineTuneSyncState',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('next_sync_at', models.DateTimeField(blank=True, null=True)),
                ('consecutive_failures', models.IntegerField(default=0)),
                ('last_error', models.TextField(blank=True)),
                ('last_synced_at', models.DateTimeField(blank=True, null=True)),
                ('connection', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='finetune_sync', to='providers.providerconnection')),
            ],
            options={
                'db_table': 'jobs_app_finetunesyncstate',
            },
        ),
        migrations.CreateModel(
            name='MetricPoint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('step', models.IntegerField()),
                ('train_loss', models.FloatField(null=True)),
                ('train_accuracy', models.FloatField(null=True)),
                ('valid_loss', models.FloatField(null=True)),
                ('valid_accuracy', models.FloatField(null=True)),
                ('job', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='metric_points', to='finetune.finetunejob')),
            ],
            options={
                'db_table': 'jobs_app_metricpoint',
                'ordering': ['step'],
            },
        ),
        migrations.AddIndex(
            model_name='finetunejob',
            index=models.Index(fields=['connection', 'status'], name='finetune_job_active_lookup'),
        ),
        migrations.AddConstraint(
            model_name='finetunejob',
            constraint=models.UniqueConstraint(fields=('connection', 'remote_id'), name='finetune_job_once_per_connection'),
        ),
        migrations.AddConstraint(
            model_name='finetuneevent',
            constraint=models.UniqueConstraint(fields=('job', 'remote_id'), name='finetune_event_once'),
        ),
        migrations.AddConstraint(
            model_name='finetunecheckpoint',
            constraint=models.UniqueConstraint(fields=('job', 'remote_id'), name='finetune_checkpoint_once'),
        ),
        migrations.AddConstraint(
            model_name='metricpoint',
            constraint=models.UniqueConstraint(fields=('job', 'step'), name='finetune_metric_once_per_step'),
        ),
    ])]
