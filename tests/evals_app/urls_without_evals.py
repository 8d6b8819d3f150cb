"""The site's URLs without the evals app's: chat's pages must still render."""

from __future__ import annotations

from django.urls import URLResolver

from project.urls import urlpatterns as site_patterns

urlpatterns = [p for p in site_patterns
               if not (isinstance(p, URLResolver) and getattr(p.urlconf_name, "__name__", "") == "evals_app.urls")]
