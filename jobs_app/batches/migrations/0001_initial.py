"""The batches models, made by jobs_app's migrations before they had an app of their own:
only the migration state is created here (the tables exist, with their data); content types
follow the models so admin history and permissions stay attached."""


import django.db.models.deletion
import jobs_app.batches.models
from django.conf import settings
from django.db import migrations, models

from project.migration_operations import content_types_moved


MODELS = ['batchgroup', 'batchbuild', 'batch', 'batchrequest']


DATABASE_OPERATIONS = [content_types_moved(MODELS, from_label="jobs_app", to_label="batches")]


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
            name='BatchGroup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=200)),
                ('endpoint', models.CharField(choices=[('/v1/chat/completions', 'Chat Completions'), ('/v1/embeddings', 'Embeddings'), ('/v1/responses', 'Responses')], max_length=40)),
                ('model', models.CharField(max_length=200)),
                ('source', models.CharField(choices=[('jsonl', 'JSONL upload'), ('csv', 'CSV + template'), ('threads', 'Threads'), ('retry', 'Retry of failed rows')], max_length=10)),
                ('metadata', models.JSONField(blank=True, default=dict)),
                ('request_count', models.PositiveIntegerField(default=0)),
                ('input_bytes', models.BigIntegerField(default=0)),
                ('estimated_input_tokens', models.BigIntegerField(default=0)),
                ('estimated_cost_usd', models.DecimalField(blank=True, decimal_places=6, max_digits=14, null=True)),
                ('submit_error', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('submitted_at', models.DateTimeField(blank=True, null=True)),
                ('connection', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='batch_groups', to='providers.providerconnection')),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('retry_of', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='retries', to='batches.batchgroup')),
                ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='batch_groups', to='teams.team')),
            ],
            options={
                'db_table': 'jobs_app_batchgroup',
                'ordering': ['-created_at'],
            },
        ),
        migrations.CreateModel(
            name='BatchBuild',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=200)),
                ('endpoint', models.CharField(choices=[('/v1/chat/completions', 'Chat Completions'), ('/v1/embeddings', 'Embeddings'), ('/v1/responses', 'Responses')], max_length=40)),
                ('source', models.CharField(choices=[('jsonl', 'JSONL upload'), ('csv', 'CSV + template'), ('threads', 'Threads'), ('retry', 'Retry of failed rows')], max_length=10)),
                ('options', models.JSONField(blank=True, default=dict)),
                ('upload', models.FileField(blank=True, max_length=300, upload_to=jobs_app.batches.models._build_upload_path)),
                ('state', models.CharField(choices=[('queued', 'Queued'), ('running', 'Checking'), ('done', 'Ready'), ('invalid', 'Not accepted')], default='queued', max_length=10)),
                ('problems', models.JSONField(blank=True, default=list)),
                ('more_problems', models.PositiveIntegerField(default=0)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('connection', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='providers.providerconnection')),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='batch_builds', to='teams.team')),
                ('group', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='batches.batchgroup')),
            ],
            options={
                'db_table': 'jobs_app_batchbuild',
                'ordering': ['-created_at'],
            },
        ),
        migrations.CreateModel(
            name='Batch',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('part', models.PositiveIntegerField(default=1)),
                ('remote_id', models.CharField(blank=True, max_length=200)),
                ('endpoint', models.CharField(choices=[('/v1/chat/completions', 'Chat Completions'), ('/v1/embeddings', 'Embeddings'), ('/v1/responses', 'Responses')], max_length=40)),
                ('status', models.CharField(choices=[('draft', 'Draft'), ('submitting', 'Submitting'), ('submit_failed', 'Not submitted'), ('validating', 'Validating'), ('failed', 'Failed'), ('in_progress', 'In progress'), ('finalizing', 'Finalizing'), ('completed', 'Completed'), ('expired', 'Expired'), ('cancelling', 'Cancelling'), ('cancelled', 'Cancelled')], default='draft', max_length=15)),
                ('remote_output_file_id', models.CharField(blank=True, max_length=200)),
                ('remote_error_file_id', models.CharField(blank=True, max_length=200)),
                ('request_count', models.PositiveIntegerField(default=0)),
                ('input_bytes', models.BigIntegerField(default=0)),
                ('total', models.PositiveIntegerField(default=0)),
                ('completed', models.PositiveIntegerField(default=0)),
                ('failed', models.PositiveIntegerField(default=0)),
                ('errors', models.JSONField(blank=True, default=list)),
                ('input_tokens', models.BigIntegerField(default=0)),
                ('cached_tokens', models.BigIntegerField(default=0)),
                ('output_tokens', models.BigIntegerField(default=0)),
                ('cost_usd', models.DecimalField(blank=True, decimal_places=6, max_digits=14, null=True)),
                ('remote_created_at', models.DateTimeField(blank=True, null=True)),
                ('in_progress_at', models.DateTimeField(blank=True, null=True)),
                ('finalizing_at', models.DateTimeField(blank=True, null=True)),
                ('completed_at', models.DateTimeField(blank=True, null=True)),
                ('failed_at', models.DateTimeField(blank=True, null=True)),
                ('expired_at', models.DateTimeField(blank=True, null=True)),
                ('cancelling_at', models.DateTimeField(blank=True, null=True)),
                ('cancelled_at', models.DateTimeField(blank=True, null=True)),
                ('expires_at', models.DateTimeField(blank=True, null=True)),
                ('results_state', models.CharField(choices=[('none', 'Not yet'), ('queued', 'Queued'), ('done', 'Collected'), ('error', 'Could not collect')], default='none', max_length=10)),
                ('results_error', models.TextField(blank=True)),
                ('submitting_since', models.DateTimeField(blank=True, null=True)),
                ('sync_failures', models.PositiveIntegerField(default=0)),
                ('sync_error', models.TextField(blank=True)),
                ('next_sync_at', models.DateTimeField(blank=True, null=True)),
                ('last_synced_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('connection', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='batches', to='providers.providerconnection')),
                ('error_file', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='files.file')),
                ('input_file', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='files.file')),
                ('output_file', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='files.file')),
                ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='batches', to='teams.team')),
                ('group', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='parts', to='batches.batchgroup')),
            ],
            options={
                'db_table': 'jobs_app_batch',
                'ordering': ['group_id', 'part'],
            },
        ),
        migrations.CreateModel(
            name='BatchRequest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('line_no', models.PositiveIntegerField()),
                ('custom_id', models.CharField(max_length=512)),
                ('body', models.JSONField()),
                ('input_text', models.TextField(blank=True)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('expired', 'Expired'), ('not_run', 'Not run')], default='pending', max_length=10)),
                ('status_code', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('output_text', models.TextField(blank=True)),
                ('output_json', models.JSONField(blank=True, null=True)),
                ('error_code', models.CharField(blank=True, max_length=100)),
                ('error_message', models.TextField(blank=True)),
                ('input_tokens', models.PositiveIntegerField(default=0)),
                ('output_tokens', models.PositiveIntegerField(default=0)),
                ('provider_request_id', models.CharField(blank=True, max_length=200)),
                ('batch', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='requests', to='batches.batch')),
            ],
            options={
                'db_table': 'jobs_app_batchrequest',
                'ordering': ['batch_id', 'line_no'],
            },
        ),
        migrations.AddIndex(
            model_name='batchgroup',
            index=models.Index(fields=['team', '-created_at'], name='batchgroup_team_recent'),
        ),
        migrations.AddIndex(
            model_name='batch',
            index=models.Index(fields=['connection', 'status'], name='batch_connection_status'),
        ),
        migrations.AddConstraint(
            model_name='batch',
            constraint=models.UniqueConstraint(condition=models.Q(('remote_id', ''), _negated=True), fields=('connection', 'remote_id'), name='batch_unique_remote_id_per_connection'),
        ),
        migrations.AddConstraint(
            model_name='batch',
            constraint=models.UniqueConstraint(fields=('group', 'part'), name='batch_unique_part'),
        ),
        migrations.AddIndex(
            model_name='batchrequest',
            index=models.Index(fields=['batch', 'status'], name='batchrequest_batch_status'),
        ),
        migrations.AddConstraint(
            model_name='batchrequest',
            constraint=models.UniqueConstraint(fields=('batch', 'custom_id'), name='batchrequest_unique_custom_id'),
        ),
    ])]
