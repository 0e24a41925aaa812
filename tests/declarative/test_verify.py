"""`POST .../credentials/{name}/verify`: whether a secret is the stored one, answered without
the stored one ever leaving the server, to keys that may change the data service only."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from headwater.client import Client, ForbiddenError, NotFoundError, ValidationError


def test_a_secret_is_checked_against_the_stored_one_never_returned(
    hw: Client, connect: Callable[..., Client]
) -> None:
    hw.create_data_service({"id": "sales"})
    hw.create_data_service({"id": "other"})
    hw.put_credential("sales", "wh", "s3cret")
    assert hw.verify_credential("sales", "wh", "s3cret") is True
    assert hw.verify_credential("sales", "wh", "s3cret\n") is False
    assert hw.verify_credential("sales", "wh", "S3CRET") is False
    assert hw.verify_credential("sales", "wh", "s3cr\u00e9t") is False

    with pytest.raises(NotFoundError, match="data service 'sales' has no credential 'nope'"):
        hw.verify_credential("sales", "nope", "x")
    with pytest.raises(NotFoundError):
        hw.verify_credential("missing", "wh", "x")
    with pytest.raises(ValidationError):
        hw.verify_credential("sales", "wh", "")

    reader = connect(read_only=True)
    with pytest.raises(ForbiddenError):
        reader.verify_credential("sales", "wh", "s3cret")
    elsewhere = connect(data_services=["other"])
    with pytest.raises(ForbiddenError):
        elsewhere.verify_credential("sales", "wh", "s3cret")
    assert connect(data_services=["sales"]).verify_credential("sales", "wh", "s3cret")
