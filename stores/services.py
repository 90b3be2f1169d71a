from collections.abc import Mapping
from typing import Any

from django.db import models, transaction

from accounts.models import User
from stores.models import Store, StoreEmailSettingsChange

EMAIL_SETTINGS_FIELDS = (
    "email_enabled",
    "reply_to",
    "copy_to",
    "notify_applying_user",
    "failure_contacts",
    "email_report",
)


def _history_value(store: Store, name: str) -> str:
    """A field's value as the history keeps it: booleans as on/off, a format by its code."""
    if name == "email_report":
        return store.email_report.code if store.email_report else ""
    value = getattr(store, name)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value or "")


@transaction.atomic
def store_update(*, store: Store, updated_by: User, data: Mapping[str, Any]) -> list[StoreEmailSettingsChange]:
    """Saves the fields of ``data`` on ``store`` and records each changed email setting.

    ``data`` is what the Edit form cleaned; files follow Django's form conventions (False
    clears the logo, None keeps it). Returns the history rows written.
    """
    locked = Store.objects.select_for_update().get(pk=store.pk)
    before = {name: _history_value(locked, name) for name in EMAIL_SETTINGS_FIELDS}
    for name, value in data.items():
        field = Store._meta.get_field(name)
        assert isinstance(field, models.Field)  # noqa: S101 - names come from the form's Meta.fields
        field.save_form_data(store, value)
    store.full_clean()
    store.save()
    changes = [
        StoreEmailSettingsChange(
            store=store,
            changed_by=updated_by,
            field=name,
            old_value=before[name],
            new_value=_history_value(store, name),
        )
        for name in EMAIL_SETTINGS_FIELDS
        if before[name] != _history_value(store, name)
    ]
    return StoreEmailSettingsChange.objects.bulk_create(changes)
