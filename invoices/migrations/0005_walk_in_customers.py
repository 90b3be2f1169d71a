from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def create_walk_in_customers(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Every existing business gets its cash customer ("Cliente contado")."""
    Business = apps.get_model("accounts", "Business")
    Customer = apps.get_model("invoices", "Customer")
    for business in Business.objects.exclude(customers__is_walk_in=True):
        Customer.objects.create(business=business, name="Cliente contado", is_walk_in=True)


class Migration(migrations.Migration):
    dependencies = [("invoices", "0004_alter_customer_emails_and_more"), ("accounts", "0002_initial")]

    operations = [migrations.RunPython(create_walk_in_customers, migrations.RunPython.noop)]
