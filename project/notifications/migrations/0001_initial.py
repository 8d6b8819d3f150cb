"""The notifications models, made by jobs_app's migrations before they had an app of their own:
only the migration state is created here (the tables exist, with their data); content types
follow the models so admin history and permissions stay attached."""


import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from project.migration_operations import content_types_moved


MODELS = ['notification', 'notificationsseen']


DATABASE_OPERATIONS = [content_types_moved(MODELS, from_label="jobs_app", to_label="notifications")]


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('jobs_app', '0005_batch_submitting_since'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('teams', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.SeparateDatabaseAndState(database_operations=DATABASE_OPERATIONS, state_operations=[
        migrations.CreateModel(
            name='Notification',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('text', models.CharField(max_length=500)),
                ('link', models.CharField(blank=True, max_length=500)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='notifications', to='teams.team')),
            ],
            options={
                'db_table': 'jobs_app_notification',
                'ordering': ['-created_at'],
                'indexes': [models.Index(fields=['team', 'created_at'], name='notification_team_time')],
            },
        ),
        migrations.CreateModel(
            name='NotificationsSeen',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('until', models.DateTimeField()),
                ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='teams.team')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'db_table': 'jobs_app_notificationsseen',
                'constraints': [models.UniqueConstraint(fields=('user', 'team'), name='notifications_seen_once')],
            },
        ),
    ])]
