from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

BUILT_IN = [
    {
        "code": "pos-ticket-80mm",
        "name_es": "Tiquete de caja 80 mm",
        "name_en": "80 mm POS ticket",
        "template_name": "reports/pos_ticket_80mm.html",
        "page_size": "80mm",
        "show_logo": False,
    },
    {
        "code": "invoice-letter",
        "name_es": "Factura tamaño carta",
        "name_en": "Full-page invoice (Letter)",
        "template_name": "reports/invoice_full_page.html",
        "page_size": "letter",
        "show_logo": True,
    },
    {
        "code": "invoice-a4",
        "name_es": "Factura tamaño A4",
        "name_en": "Full-page invoice (A4)",
        "template_name": "reports/invoice_full_page.html",
        "page_size": "A4",
        "show_logo": True,
    },
]


def create_built_in_formats(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    ReportFormat = apps.get_model("invoices", "ReportFormat")
    for row in BUILT_IN:
        ReportFormat.objects.update_or_create(code=row["code"], defaults=row)


def remove_built_in_formats(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    ReportFormat = apps.get_model("invoices", "ReportFormat")
    ReportFormat.objects.filter(code__in=[row["code"] for row in BUILT_IN]).delete()


class Migration(migrations.Migration):
    dependencies = [("invoices", "0002_reportformat")]

    operations = [migrations.RunPython(create_built_in_formats, remove_built_in_formats)]
