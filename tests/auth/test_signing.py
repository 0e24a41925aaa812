"""Request signing on its own: the canonical request, tampering, clock skew, replays."""

from __future__ import annotations

import datetime
import hashlib
import hmac

import pytest

from headwater.signing import (
    ClockSkewError,
    MalformedAuthError,
    MemoryNonces,
    ReplayError,
    SignatureMismatchError,
    UnknownAccessKeyError,
    canonical_target,
    derive_signing_key,
    parse_authorization,
    sign,
    verify,
)

T0 = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)
AK = "HWAAAAAAAAAAAAAAAA"
SK = "s3cr3t-KEY-0123456789-abcdefghijklmnopq"
OTHER_AK = "HWBBBBBBBBBBBBBBBB"
KEYS = {AK: derive_signing_key(AK, SK), OTHER_AK: derive_signing_key(OTHER_AK, SK + "x")}


def lookup(access_key: str) -> bytes:
    if access_key not in KEYS:
        raise UnknownAccessKeyError(f"access key {access_key} does not exist")
    return KEYS[access_key]


def check(
    method: str,
    target: str,
    body: bytes | str | None,
    headers: dict[str, str],
    *,
    now: datetime.datetime = T0,
    max_skew: float = 300,
    nonces: MemoryNonces | None = None,
) -> str:
    return verify(
        method,
        target,
        body,
        headers,
        lookup,
        nonces or MemoryNonces(lambda: now),
        now=now,
        max_skew=max_skew,
    )


def test_round_trip_returns_the_access_key() -> None:
    headers = sign("POST", "/api/v1/things?b=2&a=1", b'{"x": 1}', AK, SK, now=T0)
    assert set(headers) == {"Authorization"}
    assert headers["Authorization"].startswith(f"HWR1-HMAC-SHA256 Credential={AK}, ")
    assert check("POST", "/api/v1/things?b=2&a=1", b'{"x": 1}', headers) == AK


def test_the_secret_never_travels() -> None:
    headers = sign("PUT", "https://h:8443/p", SK, AK, SK, now=T0)
    assert SK not in str(headers)
    assert derive_signing_key(AK, SK).hex() not in str(headers)


def test_signature_is_hmac_sha256_of_the_documented_string() -> None:
    headers = sign("get", "/a/b?z=1&y=2", b"body", AK, SK, now=T0, nonce="n" * 20)
    fields = parse_authorization(headers)
    text = "\n".join(
        [
            "HWR1-HMAC-SHA256",
            str(int(T0.timestamp())),
            "n" * 20,
            AK,
            "GET",
            "/a/b",
            "y=2&z=1",
            hashlib.sha256(b"body").hexdigest(),
        ]
    )
    key = hmac.new(b"HWR1" + SK.encode(), AK.encode(), hashlib.sha256).digest()
    assert fields.signature == hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("DELETE", "/api/v1/things?a=1&b=2", b"payload"),  # method
        ("POST", "/api/v1/thingz?a=1&b=2", b"payload"),  # path
        ("POST", "/api/v1/things/?a=1&b=2", b"payload"),  # trailing slash
        ("POST", "/api/v1/things?a=1&b=3", b"payload"),  # query value
        ("POST", "/api/v1/things?a=1&b=2&c=", b"payload"),  # query parameter added
        ("POST", "/api/v1/things?a=1", b"payload"),  # query parameter removed
        ("POST", "/api/v1/things?a=1&b=2", b"payloaD"),  # body
        ("POST", "/api/v1/things?a=1&b=2", b""),  # body dropped
    ],
)
def test_every_tampering_fails(method: str, target: str, body: bytes) -> None:
    headers = sign("POST", "/api/v1/things?a=1&b=2", b"payload", AK, SK, now=T0)
    with pytest.raises(SignatureMismatchError, match="does not match"):
        check(method, target, body, headers)


def test_tampered_timestamp_nonce_or_access_key_fails() -> None:
    headers = sign("GET", "/x", None, AK, SK, now=T0, nonce="a" * 20)
    value = headers["Authorization"]
    stamp = str(int(T0.timestamp()))
    changed = {
        "timestamp": value.replace(f"Timestamp={stamp}", f"Timestamp={int(stamp) - 1}"),
        "nonce": value.replace("Nonce=" + "a" * 20, "Nonce=" + "b" * 20),
        "access key": value.replace(AK, OTHER_AK),
    }
    for what, forged in changed.items():
        with pytest.raises(SignatureMismatchError):
            check("GET", "/x", None, {"Authorization": forged})
        assert what


def test_a_wrong_secret_fails_and_the_error_helps_without_revealing_it() -> None:
    headers = sign("GET", "/x", None, AK, "not-the-secret", now=T0)
    with pytest.raises(SignatureMismatchError) as caught:
        check("GET", "/x", None, headers)
    message = str(caught.value)
    assert "secret key of access key " + AK in message
    assert parse_authorization(headers).signature not in message


def test_encoded_and_decoded_targets_sign_alike() -> None:
    # A client signs what it sends; a server may see the path decoded and the query reordered.
    headers = sign("GET", "http://h/data%20services/a+b?q=a%20b&p=%2B", None, AK, SK, now=T0)
    assert check("GET", "/data services/a+b?p=%2B&q=a+b", None, headers) == AK
    assert canonical_target("") == ("/", "")
    assert canonical_target("/a?b&a=2&a=1") == ("/a", "a=1&a=2&b=")


def test_header_names_are_case_insensitive() -> None:
    headers = sign("GET", "/x", None, AK, SK, now=T0)
    assert check("GET", "/x", None, {"authorization": headers["Authorization"]}) == AK


@pytest.mark.parametrize("offset", [-300, 300, -1, 0, 1])
def test_skew_within_the_limit_is_accepted(offset: int) -> None:
    headers = sign("GET", "/x", None, AK, SK, now=T0 + datetime.timedelta(seconds=offset))
    assert check("GET", "/x", None, headers) == AK


@pytest.mark.parametrize(("offset", "word"), [(-301, "old"), (301, "in the future")])
def test_skew_beyond_the_limit_is_refused_both_ways(offset: int, word: str) -> None:
    headers = sign("GET", "/x", None, AK, SK, now=T0 + datetime.timedelta(seconds=offset))
    with pytest.raises(ClockSkewError, match=f"301 s {word}; at most 300 s"):
        check("GET", "/x", None, headers)


def test_the_skew_limit_is_configurable() -> None:
    headers = sign("GET", "/x", None, AK, SK, now=T0 - datetime.timedelta(seconds=31))
    with pytest.raises(ClockSkewError):
        check("GET", "/x", None, headers, max_skew=30)
    assert check("GET", "/x", None, headers, max_skew=31) == AK


def test_a_replayed_request_is_refused_every_time() -> None:
    nonces = MemoryNonces(lambda: T0)
    headers = sign("POST", "/x", b"1", AK, SK, now=T0)
    assert check("POST", "/x", b"1", headers, nonces=nonces) == AK
    for _ in range(3):
        with pytest.raises(ReplayError, match="replayed"):
            check("POST", "/x", b"1", headers, nonces=nonces)


def test_the_same_nonce_under_another_key_is_not_a_replay() -> None:
    nonces = MemoryNonces(lambda: T0)
    check("GET", "/x", None, sign("GET", "/x", None, AK, SK, now=T0, nonce="c" * 20), nonces=nonces)
    other = sign("GET", "/x", None, OTHER_AK, SK + "x", now=T0, nonce="c" * 20)
    assert check("GET", "/x", None, other, nonces=nonces) == OTHER_AK


def test_a_bad_signature_does_not_use_up_its_nonce() -> None:
    nonces = MemoryNonces(lambda: T0)
    forged = sign("GET", "/x", None, AK, "wrong", now=T0, nonce="d" * 20)
    with pytest.raises(SignatureMismatchError):
        check("GET", "/x", None, forged, nonces=nonces)
    good = sign("GET", "/x", None, AK, SK, now=T0, nonce="d" * 20)
    assert check("GET", "/x", None, good, nonces=nonces) == AK


def test_an_unknown_access_key_is_refused() -> None:
    headers = sign("GET", "/x", None, "HWCCCCCCCCCCCCCCCC", SK, now=T0)
    with pytest.raises(UnknownAccessKeyError):
        check("GET", "/x", None, headers)


GOOD = sign("GET", "/x", None, AK, SK, now=T0)["Authorization"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer abc"},
        {"Authorization": "AWS4-HMAC-SHA256 " + GOOD.split(" ", 1)[1]},
        {"Authorization": GOOD.replace("Credential=", "Credentials=")},
        {"Authorization": GOOD.replace(", Nonce=", ", Nonce=x, Nonce=")},
        {"Authorization": GOOD.rsplit(", ", 1)[0]},  # no signature
        {"Authorization": GOOD[:-1] + "Z"},  # not hex
        {"Authorization": GOOD.replace("Credential=HW", "Credential=XX")},
        {"Authorization": GOOD.replace("Timestamp=", "Timestamp=-")},
        {"Authorization": GOOD.replace("Nonce=", "Nonce=a\n")},
        {"Authorization": GOOD + ", Extra=1"},
    ],
)
def test_malformed_headers_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(MalformedAuthError):
        check("GET", "/x", None, headers)


def test_sign_refuses_what_it_cannot_sign() -> None:
    with pytest.raises(MalformedAuthError, match="not a Headwater access key"):
        sign("GET", "/x", None, "AKIA1234", SK)
    with pytest.raises(MalformedAuthError, match="nonce"):
        sign("GET", "/x", None, AK, SK, nonce="short")


def test_memory_nonces_forget_after_expiry() -> None:
    now = [T0]
    nonces = MemoryNonces(lambda: now[0])
    expires = int(T0.timestamp()) + 10
    assert nonces(AK, "e" * 20, expires)
    assert not nonces(AK, "e" * 20, expires)
    now[0] = T0 + datetime.timedelta(seconds=11)
    assert nonces(AK, "e" * 20, expires + 20)
