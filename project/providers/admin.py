from django.contrib import admin

from project.providers.models import ProviderConnection


@admin.register(ProviderConnection)
class ProviderConnectionAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "kind", "base_url", "is_default", "last_test_ok"]
    # Secrets stay out of the admin too: only the last four characters are shown.
    exclude = ["api_key_encrypted", "webhook_secret_encrypted"]
    readonly_fields = ["api_key_last4", "public_id"]
