"""Every string the product shows is translatable, and the committed Spanish catalog has them all."""

import shutil
import subprocess
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from django.utils import translation

from tests.conftest import PROJECT_DIR

SOURCES = ["manage.py", "finanzapro", "accounts", "stores", "invoices", "mailer", "templates", "locale"]


def read_catalog(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f)


def message_ids(catalog: Catalog) -> set[str]:
    return {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}


def test_the_committed_catalogs_hold_every_string_of_the_code(tmp_path: Path) -> None:
    for name in SOURCES:
        source = PROJECT_DIR / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
        else:
            shutil.copy(source, tmp_path / name)
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "--locale", "es", "--no-obsolete"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=120,
    )
    regenerated = read_catalog(tmp_path / "locale/es/LC_MESSAGES/django.po")
    committed = read_catalog(PROJECT_DIR / "locale/es/LC_MESSAGES/django.po")
    missing = message_ids(regenerated) - message_ids(committed)
    assert not missing, f"run `make makemessages` and translate: {sorted(missing)}"


def test_every_spanish_message_is_translated() -> None:
    catalog = read_catalog(PROJECT_DIR / "locale/es/LC_MESSAGES/django.po")
    untranslated = [
        m.id
        for m in catalog
        if m.id and (m.fuzzy or not (m.string if isinstance(m.string, str) else all(m.string or ())))
    ]
    assert not untranslated
    assert not catalog.fuzzy


def test_the_compiled_catalog_is_used() -> None:
    with translation.override("es"):
        assert translation.gettext("Stores") == "Tiendas"
    with translation.override("en"):
        assert translation.gettext("Stores") == "Stores"
