"""The check that no outside call happens while a transaction is open."""

from __future__ import annotations

import pytest
from django.db import transaction

from sharedkernel.outside import CallInsideTransaction, ensure_outside_transaction, open_transaction


@pytest.mark.django_db
def test_a_test_cases_own_wrapper_is_not_an_open_transaction():
    assert open_transaction() is False
    ensure_outside_transaction("gateway.charge")  # no error


@pytest.mark.django_db
def test_a_call_inside_the_codes_own_transaction_is_refused():
    with transaction.atomic(), pytest.raises(CallInsideTransaction, match="gateway.charge"):
        ensure_outside_transaction("gateway.charge")


@pytest.mark.django_db(transaction=True)
def test_outside_any_wrapper_the_check_sees_real_transactions_only():
    assert open_transaction() is False
    with transaction.atomic():
        assert open_transaction() is True
    assert open_transaction() is False


@pytest.mark.django_db
def test_in_production_mode_it_logs_instead_of_raising(settings, caplog):
    settings.OUTSIDE_TRANSACTION_CHECK = "log"
    with transaction.atomic():
        ensure_outside_transaction("smtp.send")
    assert "smtp.send was called inside an open database transaction" in caplog.text
