"""Benchmarks. Run them with `make bench` (or `make bench ARGS="name --flag=value"`),
which provides PostgreSQL, Redis and the settings the way `make test` does.

Django is set up here, once, so every benchmark module can import models at the top.
"""

import os
import tempfile

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# What benchmarks upload stays out of the dashboard's own media folder.
os.environ.setdefault("MEDIA_ROOT", tempfile.mkdtemp(prefix="bench-media-"))
django.setup()
