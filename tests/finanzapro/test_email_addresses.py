import pytest
from django.core.exceptions import ValidationError

from finanzapro.email_addresses import EmailListFormField, SingleEmailFormField, normalize_address_list


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("a@x.com; b@y.com", "a@x.com; b@y.com"),
        ("a@x.com,b@y.com;", "a@x.com; b@y.com"),
        (" A@X.com ; a@x.com ", "a@x.com"),
        ("", ""),
        (" ; , ", ""),
        ("a@x.com;;b@y.com,,", "a@x.com; b@y.com"),
    ],
)
def test_address_lists_are_forgiving_and_stored_normalized(typed: str, stored: str) -> None:
    assert normalize_address_list(typed) == stored
    assert EmailListFormField(required=False).clean(typed) == stored


def test_the_error_names_the_bad_address() -> None:
    with pytest.raises(ValidationError) as caught:
        EmailListFormField(required=False).clean("a@x.com; nope")
    assert "nope" in caught.value.messages[0]
    assert "a@x.com" not in caught.value.messages[0]


def test_at_most_20_addresses() -> None:
    twenty = "; ".join(f"user{i}@x.com" for i in range(20))
    assert normalize_address_list(twenty).count("@") == 20
    with pytest.raises(ValidationError) as caught:
        normalize_address_list(twenty + "; user20@x.com")
    assert caught.value.code == "too_many"


def test_duplicates_do_not_count_against_the_limit() -> None:
    assert normalize_address_list("; ".join(["a@x.com"] * 30)) == "a@x.com"


@pytest.mark.parametrize("typed", ["a@x.com\r\nBcc: z@z.com", "a@x.com\nb@y.com", "a@x.com\r", "a@x.com; b@y.com\n"])
def test_a_line_break_anywhere_is_refused(typed: str) -> None:
    with pytest.raises(ValidationError) as caught:
        EmailListFormField(required=False).clean(typed)
    assert caught.value.code == "line_break"


@pytest.mark.parametrize("typed", ["a@x.com\r\nBcc: z@z.com", "a@x.com\n"])
def test_a_single_address_with_a_line_break_is_refused(typed: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SingleEmailFormField(required=False).clean(typed)
    assert caught.value.code == "line_break"


def test_a_single_address_is_trimmed_and_lower_cased() -> None:
    assert SingleEmailFormField().clean("  Ventas@Tienda.CR ") == "ventas@tienda.cr"
