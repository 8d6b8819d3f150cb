from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('assistants_app', '0002_chat_images'),
    ]

    operations = [
        migrations.AddField(
            model_name='run',
            name='usage_estimated',
            field=models.BooleanField(default=False),
        ),
    ]
