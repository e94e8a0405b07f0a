"""Our own token check (``jws.py``, ``tokens.verify_access_token``) against PyJWT's answers.

PyJWT used to verify our tokens; ``jws.py`` replaced it on the hot path for speed. These
tests sign claim sets and headers of every shape and hold the two to each other: whatever
we accept, PyJWT accepts with the same claims; whatever PyJWT refuses, we refuse. Where
PyJWT is lenient (a number written as a string, a padded segment, the high-S twin of a
signature), we are stricter; and we refuse an ``exp - iat`` longer than any token we issue,
which PyJWT has no option for (``pyjwt_verdict`` adds that check).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt as pyjwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auth_service.errors import CredentialError, ExpiredToken, InvalidToken, TokenTooLong
from auth_service.tokens import (
    REQUIRED_CLAIMS,
    _identity,
    issue_access_token,
    verify_access_token,
)
from auth_service.types import Identity

from .test_tokens import KEYS, PARAMS, TOKEN, USER

KEY = KEYS.signing
# The order n of P-256 (FIPS 186-4 D.1.2.3): (r, s) and (r, n - s) are both valid ECDSA.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
HEADER = json.dumps({"alg": "ES256", "kid": KEY.kid, "typ": "at+jwt"})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_raw(header: str, payload: str, *, high_s: bool = False) -> str:
    """A token over exactly these JSON texts (PyJWT would re-serialise them), signed by
    PyJWT and given the low-S form we sign with (or the high-S one)."""
    signing_input = f"{b64(header.encode())}.{b64(payload.encode())}"
    signature = pyjwt.algorithms.ECAlgorithm(pyjwt.algorithms.ECAlgorithm.SHA256).sign(
        signing_input.encode(), KEY.private_key
    )
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if (s > P256_ORDER // 2) != high_s:
        s = P256_ORDER - s
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def pyjwt_verdict(token: str) -> Identity | type[Exception]:
    """What the service made of the token when PyJWT verified it (its options, then the
    claim types checked by ``tokens._identity``)."""
    try:
        header = pyjwt.get_unverified_header(token)
        if header.get("typ") != "at+jwt" or header.get("kid") != KEY.kid:
            return InvalidToken
        claims = pyjwt.decode(
            token,
            KEY.public_key,
            algorithms=["ES256"],
            audience=PARAMS.audience,
            issuer=PARAMS.issuer,
            leeway=PARAMS.leeway_seconds,
            options={"require": list(REQUIRED_CLAIMS), "strict_aud": True},
        )
        if _lifetime(claims) > PARAMS.max_lifetime_seconds + PARAMS.leeway_seconds:
            return InvalidToken  # our one check PyJWT has no option for (documented)
        return _identity(claims)
    except pyjwt.ExpiredSignatureError:
        return ExpiredToken
    except pyjwt.PyJWTError:
        return InvalidToken
    except CredentialError as refusal:
        return type(refusal)
    except OverflowError:  # float() of a 400-digit exp
        return InvalidToken


def _lifetime(claims: dict[str, Any]) -> float:
    """``exp - iat`` as PyJWT reads the two (it takes them through ``int()``)."""
    try:
        return float(int(claims["exp"])) - float(int(claims["iat"]))
    except (TypeError, ValueError, OverflowError):
        return 0.0


def our_verdict(token: str) -> Identity | type[Exception]:
    try:
        return verify_access_token(token, KEYS, PARAMS)
    except CredentialError as refusal:
        return type(refusal)


def good_claims(now: int) -> dict[str, Any]:
    return {
        "iss": PARAMS.issuer,
        "aud": PARAMS.audience,
        "sub": "7d3f8b9e",
        "jti": "j1",
        "sid": "s1",
        "preferred_username": "alice",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }


class Offset(float):
    """A time claim given relative to the moment the token is signed."""


# Offsets stay 5 s away from the edges of the 10 s leeway: PyJWT truncates times to whole
# seconds, we do not, and a test may take a second or two.
TIMES = st.sampled_from([-10_000, -15, -5, 0, 5, 15, 600]).flatmap(
    lambda o: st.sampled_from([Offset(o), Offset(o + 0.5)])
)
LOOSE_TIMES = st.sampled_from(["1", None, True, [], {}, 10**400, 1e300])

CLAIM_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "iss": st.sampled_from([PARAMS.issuer, PARAMS.issuer + "/", "", None, 1, [PARAMS.issuer]]),
    "aud": st.sampled_from([PARAMS.audience, "other", [PARAMS.audience], None, "", 7]),
    "sub": st.sampled_from(["7d3f8b9e", "", None, 5]),
    "jti": st.sampled_from(["j1", "", None, 5]),
    "sid": st.sampled_from(["s1", "", None, 5]),
    **{name: TIMES | LOOSE_TIMES for name in ("iat", "nbf", "exp")},
}


def loosely_typed(value: Any) -> bool:
    """A time PyJWT takes through ``int()`` where we want a finite JSON number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value is not None  # "1" passes int(); None and lists fail both
    return isinstance(value, int) and abs(value) > 1e308


@settings(max_examples=400, deadline=None)
@given(
    changes=st.dictionaries(
        st.sampled_from(sorted(CLAIM_VALUES)), st.booleans(), max_size=4
    ).flatmap(
        lambda picked: st.fixed_dictionaries(
            {
                name: CLAIM_VALUES[name] if keep else st.just("delete")
                for name, keep in picked.items()
            }
        )
    )
)
def test_we_accept_only_what_pyjwt_accepts(changes: dict[str, Any]) -> None:
    now = int(time.time())
    claims = good_claims(now)
    for name, value in changes.items():
        if isinstance(value, Offset):
            claims[name] = now + float(value) if value % 1 else now + int(value)
        elif value == "delete":
            claims.pop(name)
        else:
            claims[name] = value
    token = sign_raw(HEADER, json.dumps(claims))
    ours, theirs = our_verdict(token), pyjwt_verdict(token)
    if isinstance(ours, Identity):
        assert ours == theirs, f"we accepted what PyJWT refused: {claims}"
        return
    loose = any(loosely_typed(claims.get(n)) for n in ("iat", "nbf", "exp"))
    if isinstance(theirs, Identity):
        assert loose, f"PyJWT accepted what we refused: {claims}"
    elif not loose:
        assert ours is theirs or issubclass(ours, theirs), claims


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        ('{"alg":"ES256","alg":"none","kid":"%s","typ":"at+jwt"}', None),
        (None, '{"sub":"a","sub":"b"}'),
        (None, '{"exp":NaN}'),
        (None, '{"exp":Infinity}'),
        (None, '{"exp":1e999}'),
        (None, '{"exp":1%s}' % ("0" * 400)),
        (None, "[1, 2]"),
        ('["ES256"]', None),
        ('{"alg":"ES256","kid":"%s","typ":"at+jwt","crit":["exp"]}', None),
        ('{"alg":"ES256","kid":"%s","typ":"at+jwt","jku":"http://x"}', None),
        ('{"alg":"ES256","kid":["%s"],"typ":"at+jwt"}', None),
        ('{"alg":"ES256","kid":"%s","typ":"JWT"}', None),
    ],
)
def test_signed_but_malformed_tokens_are_refused_with_401(
    header: str | None, payload: str | None
) -> None:
    claims = good_claims(int(time.time()))
    header_text = (header or '{"alg":"ES256","kid":"%s","typ":"at+jwt"}').replace("%s", KEY.kid)
    if payload is None:
        payload = json.dumps({**claims, "groups": []})
    elif payload.startswith("{"):
        merged = {k: v for k, v in claims.items() if f'"{k}"' not in payload}
        payload = payload[:-1] + "," + json.dumps(merged)[1:]
    token = sign_raw(header_text, payload)
    with pytest.raises(InvalidToken):
        verify_access_token(token, KEYS, PARAMS)


def test_the_raw_signing_helper_makes_a_token_we_accept() -> None:
    # The control for the cases above: the same construction, nothing malformed.
    token = sign_raw(HEADER, json.dumps(good_claims(int(time.time()))))
    assert verify_access_token(token, KEYS, PARAMS).username == "alice"


def test_one_signature_has_one_spelling() -> None:
    """The last character of a 64-byte signature has four unused bits: setting any of them
    gives the same bytes to a lenient decoder. Both PyJWT and we refuse such a spelling."""
    signing_input, _, signature = TOKEN.rpartition(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    for spare in range(1, 16):
        variant = f"{signing_input}.{signature[:-1]}{alphabet[last | spare]}"
        assert variant != TOKEN
        assert pyjwt_verdict(variant) is InvalidToken
        assert our_verdict(variant) is InvalidToken
    padded = TOKEN + "=="
    assert our_verdict(padded) is InvalidToken


def test_the_high_s_twin_of_a_signature_is_refused() -> None:
    """ECDSA accepts (r, s) and (r, n - s) alike, and so does PyJWT. We sign with the low s
    and refuse the high one: one token, one signature (SECURITY.md, finding L4)."""
    payload = json.dumps(good_claims(int(time.time())))
    low, high = sign_raw(HEADER, payload), sign_raw(HEADER, payload, high_s=True)
    assert low.rpartition(".")[0] == high.rpartition(".")[0] and low != high
    assert isinstance(our_verdict(low), Identity)
    assert isinstance(pyjwt_verdict(high), Identity)  # the malleability is real
    assert our_verdict(high) is InvalidToken


def test_we_sign_with_the_low_s() -> None:
    for _ in range(64):  # a random s is high half of the time
        token = issue_access_token(KEYS, PARAMS, USER, session_id="s1")[0]
        signature = base64.urlsafe_b64decode(token.rpartition(".")[2] + "==")
        assert int.from_bytes(signature[32:], "big") <= P256_ORDER // 2


def test_the_length_cap_comes_before_any_parsing() -> None:
    with pytest.raises(TokenTooLong):
        verify_access_token("a" * (PARAMS.max_length + 1), KEYS, PARAMS)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="AQgw-_.=eyJ0{}\"':,\\ \x00é", max_size=200))
def test_any_text_gets_a_credential_error_never_a_crash(text: str) -> None:
    verdict = our_verdict(text)
    assert isinstance(verdict, type) and issubclass(verdict, CredentialError)
