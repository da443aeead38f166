import pytest

from sharedkernel.values import EmailAddress


def test_valid_address_is_normalised():
    assert EmailAddress("  Ada@Example.COM ").value == "Ada@example.com"
    assert EmailAddress("ada@example.com").domain == "example.com"


@pytest.mark.parametrize("bad", ["", "   ", "not-an-email", "a@", "@b.com", "a b@c.com", "a@b", None])
def test_invalid_address_cannot_be_constructed(bad):
    with pytest.raises(ValueError):
        EmailAddress(bad)


def test_equal_by_value():
    assert EmailAddress("a@example.com") == EmailAddress("a@EXAMPLE.com")
