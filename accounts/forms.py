from typing import Any, cast

from django import forms
from django.contrib.auth.forms import SetPasswordMixin, UsernameField
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts.models import Business, User
from accounts.selectors import assignable_store_list
from accounts.services import user_stores_validate
from stores.models import Store


class _UserDetailsForm(forms.Form):
    """What a store admin sets on any user of their business.

    The rules live in the services. The store rule is also checked here so that its error
    shows up with the others; the rules about the acting user are checked when saving.
    """

    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    email = forms.EmailField(label=_("Email"), max_length=254, required=False)
    role = forms.TypedChoiceField(
        label=_("Role"), choices=User.Role.choices, coerce=User.Role, widget=forms.RadioSelect
    )
    stores = forms.ModelMultipleChoiceField(
        label=_("Stores"),
        queryset=Store.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("A cashier works only in the stores ticked here; a store admin works in all of them."),
    )

    def __init__(self, *args: Any, business: Business, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.business = business
        # Only the business's own stores are choices: a forged id is "not one of the available choices".
        stores_field = cast("forms.ModelMultipleChoiceField[Store]", self.fields["stores"])
        stores_field.queryset = assignable_store_list(business=business)

    def clean(self) -> dict[str, Any]:
        super().clean()
        role, stores = self.cleaned_data.get("role"), self.cleaned_data.get("stores")
        if role and stores is not None:
            try:
                user_stores_validate(business=self.business, role=role, stores=stores)
            except ValidationError as exc:
                self.add_error(None, exc)
        return self.cleaned_data


class UserCreateForm(SetPasswordMixin[User], _UserDetailsForm):
    username = UsernameField(
        label=_("Username"),
        max_length=150,
        validators=[User.username_validator],
        help_text=_("Used to sign in. Letters, digits and @ . + - _ only."),
    )
    password1, password2 = SetPasswordMixin.create_password_fields()

    field_order = ["username", "first_name", "last_name", "email", "role", "stores", "password1", "password2"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        self.validate_passwords()
        # The similarity validator compares the password with the user that is about to exist.
        self.validate_password_for_user(
            User(
                username=self.cleaned_data.get("username", ""),
                first_name=self.cleaned_data.get("first_name", ""),
                last_name=self.cleaned_data.get("last_name", ""),
                email=self.cleaned_data.get("email", ""),
            )
        )
        return self.cleaned_data


class UserEditForm(_UserDetailsForm):
    is_active = forms.BooleanField(label=_("Active"), required=False, help_text=_("Inactive users cannot sign in."))
