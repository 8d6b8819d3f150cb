import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django.setup(set_prefix=False)

from project.upload_limits import BoundedBodyASGIHandler  # noqa: E402 - after setup, as get_asgi_application does

application = BoundedBodyASGIHandler()
