from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import Business, User
from invoices.models import Customer
from stores.models import Store

pytestmark = pytest.mark.django_db


def load() -> str:
    out = StringIO()
    call_command("load_demo_data", stdout=out)
    return out.getvalue()


def test_demo_data_has_a_business_with_two_stores_and_every_role() -> None:
    printed = load()
    business = Business.objects.get()
    assert business.stores.count() == 2
    assert User.objects.filter(business=business, role=User.Role.STORE_ADMIN).count() == 1
    cashier = User.objects.get(business=business, role=User.Role.CASHIER)
    assert cashier.stores.count() == 1
    assert User.objects.filter(is_staff=True).count() == 1
    assert Customer.objects.filter(business=business).count() >= 3
    for username in ("admin.demo", "cajero.demo", "soporte.demo"):
        assert username in printed
        assert User.objects.get(username=username).check_password(printed.split(username, 1)[1].split()[0])


def test_loading_the_demo_data_twice_creates_nothing_more() -> None:
    load()
    counts = (Business.objects.count(), Store.objects.count(), User.objects.count(), Customer.objects.count())
    load()
    assert (Business.objects.count(), Store.objects.count(), User.objects.count(), Customer.objects.count()) == counts
