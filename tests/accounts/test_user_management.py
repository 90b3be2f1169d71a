"""A store admin manages the users of their own business and the cashiers' store assignments."""

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.models import Business, User
from stores.models import Store
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Caja-registradora-2026"
ENGLISH = {"accept-language": "en"}


def create_data(*stores: Store, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "username": "nuevo.cajero",
        "first_name": "Nuevo",
        "last_name": "Cajero",
        "email": "nuevo@a.example",
        "role": User.Role.CASHIER,
        "stores": [store.pk for store in stores],
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
    }
    return {**data, **overrides}


def edit_data(user: User, **overrides: Any) -> dict[str, Any]:
    """The edit form as the browser would send it back unchanged."""
    data: dict[str, Any] = {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "role": user.role,
        "stores": [store.pk for store in user.stores.all()],
    }
    if user.is_active:
        data["is_active"] = "on"
    return {**data, **overrides}


def edit_url(user: User) -> str:
    return reverse("accounts:user_edit", args=[user.pk])


def field_html(html: str, name: str) -> str:
    """The markup of one form field, from its wrapper to the next field's."""
    start = html.index(f'id="field-{name}"')
    end = html.find('id="field-', start + 1)
    return html[start : end if end != -1 else len(html)]


# --- The list ---------------------------------------------------------------------------


def test_the_list_shows_only_the_users_of_the_admins_business(
    admin_a: User, cashier_a: User, admin_b: User, support: User
) -> None:
    response = client_for(admin_a).get(reverse("accounts:user_list"))
    assert response.status_code == 200
    assert '<html lang="es">' in response.text
    assert "cashier_a" in response.text
    assert edit_url(cashier_a) in response.text
    assert edit_url(admin_a) in response.text
    assert "admin_b" not in response.text
    assert edit_url(admin_b) not in response.text
    assert edit_url(support) not in response.text


def test_the_list_shows_each_cashiers_stores(admin_a: User, cashier_a: User, store_a2: Store) -> None:
    response = client_for(admin_a).get(reverse("accounts:user_list"), headers=ENGLISH)
    row_start = response.text.index(f'id="user-{cashier_a.pk}"')
    row = response.text[row_start : response.text.index("</tr>", row_start)]
    assert "Tienda A1" in row
    assert "Tienda A2" not in row
    assert "Cashier" in row
    assert reverse("accounts:user_create") in response.text


def test_only_store_admins_get_the_users_entry_in_the_navigation(admin_a: User, cashier_a: User, support: User) -> None:
    def nav(user: User) -> str:
        html = client_for(user).get(reverse("home"), headers=ENGLISH).text
        start = html.index("<nav")
        return html[start : html.index("</nav>", start)]

    users_link = f'<a href="{reverse("accounts:user_list")}">Users</a>'
    assert users_link in nav(admin_a)
    assert nav(admin_a).index(users_link) > nav(admin_a).index("Customers")
    assert reverse("accounts:user_list") not in nav(cashier_a)
    assert reverse("accounts:user_list") not in nav(support)


# --- Creating ---------------------------------------------------------------------------


def test_a_store_admin_creates_a_cashier_who_can_sign_in(admin_a: User, store_a: Store, store_a2: Store) -> None:
    response = client_for(admin_a).post(reverse("accounts:user_create"), create_data(store_a2))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:user_list")
    cashier = User.objects.get(username="nuevo.cajero")
    assert cashier.business == admin_a.business
    assert cashier.is_cashier
    assert list(cashier.stores.all()) == [store_a2]
    assert cashier.is_active
    assert Client().login(username="nuevo.cajero", password=NEW_PASSWORD)


def test_the_create_form_offers_only_the_businesss_stores(admin_a: User, store_a: Store, store_b: Store) -> None:
    response = client_for(admin_a).get(reverse("accounts:user_create"))
    assert response.status_code == 200
    assert f'value="{store_a.pk}"' in field_html(response.text, "stores")
    assert "Tienda B1" not in response.text


def test_a_store_admin_created_here_gets_no_store_assignments(admin_a: User, store_a: Store) -> None:
    data = create_data(store_a, username="otra.admin", role=User.Role.STORE_ADMIN)
    response = client_for(admin_a).post(reverse("accounts:user_create"), data)
    assert response.status_code == 302
    new_admin = User.objects.get(username="otra.admin")
    assert new_admin.is_store_admin
    assert not new_admin.stores.exists()


def test_the_business_always_is_the_admins_own(admin_a: User, store_a: Store, business_b: Business) -> None:
    data = create_data(store_a, business=business_b.pk)
    client_for(admin_a).post(reverse("accounts:user_create"), data)
    assert User.objects.get(username="nuevo.cajero").business == admin_a.business


def test_a_cashier_needs_at_least_one_store(admin_a: User, store_a: Store) -> None:
    response = client_for(admin_a).post(reverse("accounts:user_create"), create_data(), headers=ENGLISH)
    assert response.status_code == 200
    assert "Assign at least one store to a cashier." in field_html(response.text, "stores")
    assert not User.objects.filter(username="nuevo.cajero").exists()


def test_a_missing_store_is_reported_together_with_other_mistakes(admin_a: User, store_a: Store) -> None:
    data = create_data(password2="otra-cosa-2026")
    response = client_for(admin_a).post(reverse("accounts:user_create"), data, headers=ENGLISH)
    assert "Assign at least one store to a cashier." in field_html(response.text, "stores")
    assert 'class="error"' in field_html(response.text, "password2")


def test_a_store_admin_demoted_meanwhile_manages_nobody(admin_a: User, cashier_a: User, store_a: Store) -> None:
    """The admin object the request loaded is stale: the service goes by the database."""
    stale_admin = User.objects.get(pk=admin_a.pk)
    User.objects.filter(pk=admin_a.pk).update(role=User.Role.CASHIER)
    with pytest.raises(PermissionDenied):
        services.user_update(
            user=cashier_a,
            updated_by=stale_admin,
            first_name="Hacked",
            last_name="",
            email="",
            role=User.Role.STORE_ADMIN,
            stores=[],
            is_active=True,
        )
    cashier_a.refresh_from_db()
    assert cashier_a.is_cashier


def test_a_forged_store_of_another_business_is_rejected_on_create(
    admin_a: User, store_a: Store, store_b: Store
) -> None:
    response = client_for(admin_a).post(reverse("accounts:user_create"), create_data(store_a, store_b))
    assert response.status_code == 200
    assert 'class="error"' in field_html(response.text, "stores")
    assert not User.objects.filter(username="nuevo.cajero").exists()


def test_the_password_is_confirmed_and_checked_by_djangos_validators(admin_a: User, store_a: Store) -> None:
    client = client_for(admin_a)
    mismatch = client.post(reverse("accounts:user_create"), create_data(store_a, password2="otra-cosa-2026"))
    too_common = client.post(
        reverse("accounts:user_create"), create_data(store_a, password1="12345678", password2="12345678")
    )
    assert mismatch.status_code == too_common.status_code == 200
    assert 'class="error"' in field_html(mismatch.text, "password2")
    assert 'class="error"' in field_html(too_common.text, "password2")
    assert not User.objects.filter(username="nuevo.cajero").exists()


def test_a_username_taken_in_any_business_is_refused(admin_a: User, admin_b: User, store_a: Store) -> None:
    response = client_for(admin_a).post(
        reverse("accounts:user_create"), create_data(store_a, username="ADMIN_B"), headers=ENGLISH
    )
    assert response.status_code == 200
    assert "A user with that username already exists." in field_html(response.text, "username")
    assert User.objects.filter(username__iexact="admin_b").count() == 1


# --- Editing ----------------------------------------------------------------------------


def test_a_store_admin_edits_a_cashiers_details_and_stores(
    admin_a: User, cashier_a: User, store_a: Store, store_a2: Store
) -> None:
    client = client_for(admin_a)
    assert client.get(edit_url(cashier_a)).status_code == 200
    data = edit_data(cashier_a, first_name="Carla", email="carla@a.example", stores=[store_a2.pk])
    response = client.post(edit_url(cashier_a), data)
    assert response.status_code == 302
    cashier_a.refresh_from_db()
    assert cashier_a.first_name == "Carla"
    assert cashier_a.email == "carla@a.example"
    assert list(cashier_a.stores.all()) == [store_a2]
    assert cashier_a.is_active


def test_a_deactivated_user_can_no_longer_sign_in(admin_a: User, cashier_a: User) -> None:
    data = edit_data(cashier_a)
    del data["is_active"]
    assert client_for(admin_a).post(edit_url(cashier_a), data).status_code == 302
    cashier_a.refresh_from_db()
    assert not cashier_a.is_active
    assert not Client().login(username="cashier_a", password="secret-pass-123")


def test_promoting_a_cashier_to_store_admin(admin_a: User, cashier_a: User) -> None:
    response = client_for(admin_a).post(edit_url(cashier_a), edit_data(cashier_a, role=User.Role.STORE_ADMIN))
    assert response.status_code == 302
    cashier_a.refresh_from_db()
    assert cashier_a.is_store_admin
    assert not cashier_a.stores.exists()


def test_an_edited_cashier_keeps_at_least_one_store(admin_a: User, cashier_a: User, store_a: Store) -> None:
    response = client_for(admin_a).post(edit_url(cashier_a), edit_data(cashier_a, stores=[]), headers=ENGLISH)
    assert response.status_code == 200
    assert "Assign at least one store to a cashier." in field_html(response.text, "stores")
    assert list(cashier_a.stores.all()) == [store_a]


def test_a_forged_store_of_another_business_is_rejected_on_edit(
    admin_a: User, cashier_a: User, store_a: Store, store_b: Store
) -> None:
    response = client_for(admin_a).post(edit_url(cashier_a), edit_data(cashier_a, stores=[store_b.pk]))
    assert response.status_code == 200
    assert 'class="error"' in field_html(response.text, "stores")
    assert list(cashier_a.stores.all()) == [store_a]


def test_a_store_admin_cannot_deactivate_themselves(admin_a: User) -> None:
    data = edit_data(admin_a)
    del data["is_active"]
    response = client_for(admin_a).post(edit_url(admin_a), data, headers=ENGLISH)
    assert response.status_code == 200
    assert "You cannot deactivate your own account." in field_html(response.text, "is_active")
    admin_a.refresh_from_db()
    assert admin_a.is_active


def test_a_store_admin_cannot_change_their_own_role(admin_a: User, store_a: Store) -> None:
    data = edit_data(admin_a, role=User.Role.CASHIER, stores=[store_a.pk])
    response = client_for(admin_a).post(edit_url(admin_a), data, headers=ENGLISH)
    assert response.status_code == 200
    assert "You cannot change your own role." in field_html(response.text, "role")
    admin_a.refresh_from_db()
    assert admin_a.is_store_admin


def test_a_store_admin_may_edit_their_own_name(admin_a: User) -> None:
    response = client_for(admin_a).post(edit_url(admin_a), edit_data(admin_a, first_name="Ana"))
    assert response.status_code == 302
    admin_a.refresh_from_db()
    assert admin_a.first_name == "Ana"
    assert admin_a.is_active
    assert admin_a.is_store_admin


# --- Who may not ------------------------------------------------------------------------


def test_a_store_admin_gets_404_for_another_businesss_user_or_support(
    admin_a: User, admin_b: User, support: User, store_a: Store
) -> None:
    client = client_for(admin_a)
    for other in (admin_b, support):
        assert client.get(edit_url(other)).status_code == 404
        data = {"first_name": "Hacked", "role": User.Role.STORE_ADMIN, "stores": [store_a.pk]}
        assert client.post(edit_url(other), data).status_code == 404
        other.refresh_from_db()
        assert other.first_name == ""
        assert other.is_active


@pytest.mark.parametrize("actor", ["cashier_a", "support", None])
def test_cashiers_support_and_anonymous_users_cannot_use_the_users_pages(
    request: pytest.FixtureRequest, actor: str | None, admin_a: User, cashier_a: User, store_a: Store
) -> None:
    user = request.getfixturevalue(actor) if actor else None
    client = client_for(user)
    users_before = User.objects.count()
    posts = {
        reverse("accounts:user_list"): {},
        reverse("accounts:user_create"): create_data(store_a),
        edit_url(cashier_a): edit_data(cashier_a, first_name="Hacked", role=User.Role.STORE_ADMIN),
        edit_url(admin_a): {**edit_data(admin_a, first_name="Hacked"), "is_active": ""},
    }
    for url, data in posts.items():
        for response in (client.get(url), client.post(url, data)):
            if user is None:
                assert response.status_code == 302
                assert response["Location"].startswith(reverse("login"))
            else:
                assert response.status_code == 404
    assert User.objects.count() == users_before
    cashier_a.refresh_from_db()
    admin_a.refresh_from_db()
    assert (cashier_a.first_name, cashier_a.role, cashier_a.is_active) == ("", User.Role.CASHIER, True)
    assert (admin_a.first_name, admin_a.is_active) == ("", True)


def test_an_admin_of_another_business_cannot_reach_or_change_business_a(
    admin_a: User, cashier_a: User, admin_b: User, store_a: Store
) -> None:
    client = client_for(admin_b)
    listing = client.get(reverse("accounts:user_list"))
    assert listing.status_code == 200
    assert "cashier_a" not in listing.text
    assert edit_url(cashier_a) not in listing.text
    for target in (cashier_a, admin_a):
        assert client.get(edit_url(target)).status_code == 404
        data = {**edit_data(target, first_name="Hacked", role=User.Role.CASHIER), "is_active": ""}
        assert client.post(edit_url(target), data).status_code == 404
        target.refresh_from_db()
        assert (target.first_name, target.is_active) == ("", True)
    # A cashier of business B cannot be given business A's store either.
    response = client.post(reverse("accounts:user_create"), create_data(store_a))
    assert response.status_code == 200
    assert not User.objects.filter(username="nuevo.cajero").exists()
    assert list(store_a.cashiers.all()) == [cashier_a]


# --- The services, for callers other than these pages -------------------------------------


def test_user_create_refuses_a_store_of_another_business(admin_a: User, store_b: Store) -> None:
    assert admin_a.business is not None
    with pytest.raises(ValidationError) as excinfo:
        services.user_create(
            business=admin_a.business,
            created_by=admin_a,
            username="nuevo.cajero",
            first_name="",
            last_name="",
            email="",
            role=User.Role.CASHIER,
            stores=[store_b],
            password=NEW_PASSWORD,
        )
    assert "stores" in excinfo.value.message_dict
    assert not User.objects.filter(username="nuevo.cajero").exists()


def test_user_update_refuses_an_admin_of_another_business(admin_b: User, cashier_a: User, store_a: Store) -> None:
    with pytest.raises(PermissionDenied):
        services.user_update(
            user=cashier_a,
            updated_by=admin_b,
            first_name="Hacked",
            last_name="",
            email="",
            role=User.Role.CASHIER,
            stores=[store_a],
            is_active=False,
        )
    cashier_a.refresh_from_db()
    assert cashier_a.is_active
