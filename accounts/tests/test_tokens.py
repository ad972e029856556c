"""verify_token and JwksKeySet without I/O: local RSA keys, an injected JWKS, a fake clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from accounts.tokens import (
    MAX_TOKEN_CHARS,
    JwksKeySet,
    Rejection,
    StaticKeySet,
    TokenPolicy,
    TokenRejected,
    VerifiedToken,
    parse_jwks,
    verify_token,
)
from tests.fixtures.clock import Clock

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool1"
CLIENT_ID = "3n4b5urk1ft4fl3mg5e62d9ado"
NOW = 1_800_000_000.0
POLICY = TokenPolicy(issuer=ISSUER, client_id=CLIENT_ID, leeway=5)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY = new_key()
OTHER_KEY = new_key()
KID = "key-1"


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


def jwks(*pairs: tuple[rsa.RSAPrivateKey, str]) -> dict[str, Any]:
    return {"keys": [public_jwk(key, kid) for key, kid in pairs]}


KEYS = StaticKeySet(jwks((KEY, KID)))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def id_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": "6b1c2e8a-0c2f-4b4e-9d57-2f1d3c4b5a69",
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "token_use": "id",
        "cognito:username": "carol",
        "cognito:groups": ["moderators"],
        "email": "carol@example.com",
        "auth_time": int(NOW) - 60,
        "iat": int(NOW) - 60,
        "exp": int(NOW) + 3540,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def access_claims(**overrides: Any) -> dict[str, Any]:
    claims = id_claims(aud=None, email=None, **{"cognito:username": None})
    claims.update({"token_use": "access", "client_id": CLIENT_ID, "username": "carol", "scope": "openid"})
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict[str, Any], *, key: rsa.RSAPrivateKey = KEY, kid: str = KID, **headers: Any) -> str:
    # PyJWS, not jwt.encode: the latter refuses to sign some of the broken claims tested here.
    payload = json.dumps(claims).encode()
    return jwt.api_jws.PyJWS().encode(payload, key, algorithm="RS256", headers={"kid": kid, **headers})


def verify(token: str, *, keys: Any = KEYS, policy: TokenPolicy = POLICY, now: float = NOW) -> VerifiedToken:
    return verify_token(token, keys=keys, policy=policy, now=now)


def rejected(token: str, **kwargs: Any) -> TokenRejected:
    with pytest.raises(TokenRejected) as info:
        verify(token, **kwargs)
    # Whatever the reason, the detail is safe to log: it never carries the token.
    if token:
        assert token[:40] not in str(info.value)
    return info.value


# --- good tokens ------------------------------------------------------------------------------


def test_cognito_id_token_is_accepted() -> None:
    """An ID token signed by a key in the JWKS, for this pool and app client, is accepted."""
    verified = verify(sign(id_claims()))
    assert verified.subject == "6b1c2e8a-0c2f-4b4e-9d57-2f1d3c4b5a69"
    assert (verified.token_use, verified.username, verified.groups) == ("id", "carol", ("moderators",))
    assert verified.expires_at == int(NOW) + 3540


def test_cognito_access_token_is_accepted() -> None:
    """An access token (client_id, no aud) is accepted; its username comes from `username`."""
    verified = verify(sign(access_claims()))
    assert (verified.token_use, verified.username) == ("access", "carol")


def test_preferred_username_is_the_fallback_name() -> None:
    """Without cognito:username or username, preferred_username names the user."""
    claims = id_claims(**{"cognito:username": None, "preferred_username": "caz"})
    assert verify(sign(claims)).username == "caz"


# --- algorithms and keys ----------------------------------------------------------------------


def test_alg_none_is_rejected() -> None:
    """An unsigned token (alg none) is refused before any key is looked up."""
    header = b64(json.dumps({"alg": "none", "kid": KID, "typ": "JWT"}).encode())
    token = f"{header}.{b64(json.dumps(id_claims()).encode())}."
    assert rejected(token).reason is Rejection.ALGORITHM


def test_hs256_signed_with_the_public_key_is_rejected() -> None:
    """The classic key-confusion forgery (HMAC keyed with the RSA public key) is refused."""
    public_pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': KID}).encode())}.{b64(json.dumps(id_claims()).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert rejected(f"{signing_input}.{b64(signature)}").reason is Rejection.ALGORITHM


@pytest.mark.parametrize("alg", ["RS512", "PS256", "ES256", "HS512", "RS256 ", "rs256"])
def test_only_rs256_is_accepted(alg: str) -> None:
    """Every algorithm but RS256 is refused, whatever the rest of the token says."""
    header = b64(json.dumps({"alg": alg, "kid": KID}).encode())
    assert rejected(f"{header}.{b64(b'{}')}.c2ln").reason is Rejection.ALGORITHM


def test_foreign_key_with_the_right_kid_is_rejected() -> None:
    """A token signed by another key, claiming the pool's kid, fails the signature check."""
    assert rejected(sign(id_claims(), key=OTHER_KEY)).reason is Rejection.BAD_SIGNATURE


def test_embedded_jwk_and_jku_headers_are_ignored() -> None:
    """jwk / jku / x5u in the header never supply the key: the token still needs the pool's key."""
    forged = sign(
        id_claims(),
        key=OTHER_KEY,
        jwk=public_jwk(OTHER_KEY, KID),
        jku="https://attacker.example/jwks.json",
        x5u="https://attacker.example/cert.pem",
    )
    assert rejected(forged).reason is Rejection.BAD_SIGNATURE


def test_token_without_kid_is_rejected() -> None:
    """A token that names no key is refused."""
    token = jwt.api_jws.PyJWS().encode(json.dumps(id_claims()).encode(), KEY, algorithm="RS256")
    assert rejected(token).reason is Rejection.MISSING_KID


def test_unknown_kid_is_rejected() -> None:
    """A kid that is not in the JWKS is refused."""
    assert rejected(sign(id_claims(), kid="someone-elses")).reason is Rejection.UNKNOWN_KID


def test_tampered_payload_fails_the_signature() -> None:
    """Changing one claim of a signed token breaks its signature."""
    header, _, signature = sign(id_claims()).split(".")
    tampered = f"{header}.{b64(json.dumps(id_claims(sub='someone-else')).encode())}.{signature}"
    assert rejected(tampered).reason is Rejection.BAD_SIGNATURE


def test_jwks_keeps_only_rsa_signing_keys() -> None:
    """HMAC, EC, encryption-only and non-RS256 keys in a JWKS are never used."""
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))
    keys = parse_jwks(
        {
            "keys": [
                {"kty": "oct", "kid": "hmac", "k": b64(b"secret")},
                {**ec_jwk, "kid": "ec"},
                {**public_jwk(KEY, "enc"), "use": "enc"},
                {**public_jwk(KEY, "rs512"), "alg": "RS512"},
                {**public_jwk(KEY, "good")},
                "not a key",
            ]
        }
    )
    assert list(keys) == ["good"]


# --- claims -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iss",
    [
        "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_OtherPool",
        ISSUER + "x",  # the configured issuer is a prefix of this one
        ISSUER + "/",
        ISSUER[:-1],  # this one is a prefix of the configured issuer
        ISSUER.upper(),
        "http://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool1",
        [ISSUER],
        None,
    ],
)
def test_wrong_or_prefix_matching_issuer_is_rejected(iss: Any) -> None:
    """iss must equal the configured issuer exactly: no prefix, suffix, case or scheme games."""
    claims = id_claims()
    claims["iss"] = iss
    assert rejected(sign(claims)).reason is Rejection.WRONG_ISSUER


def test_id_token_where_access_is_expected_is_rejected() -> None:
    """With only access tokens accepted, an ID token is refused."""
    policy = TokenPolicy(issuer=ISSUER, client_id=CLIENT_ID, token_uses=frozenset({"access"}))
    assert rejected(sign(id_claims()), policy=policy).reason is Rejection.WRONG_TOKEN_USE


def test_access_token_where_id_is_expected_is_rejected() -> None:
    """With only ID tokens accepted, an access token is refused."""
    policy = TokenPolicy(issuer=ISSUER, client_id=CLIENT_ID, token_uses=frozenset({"id"}))
    assert rejected(sign(access_claims()), policy=policy).reason is Rejection.WRONG_TOKEN_USE


@pytest.mark.parametrize("token_use", ["refresh", "ID", "", None, ["id"]])
def test_unknown_token_use_is_rejected(token_use: Any) -> None:
    """token_use must be exactly `id` or `access`."""
    assert rejected(sign(id_claims(token_use=token_use))).reason is Rejection.WRONG_TOKEN_USE


def test_id_token_with_access_shape_is_rejected() -> None:
    """An "id" token that carries client_id instead of aud has no audience: refused."""
    claims = access_claims(token_use="id")
    assert rejected(sign(claims)).reason is Rejection.WRONG_AUDIENCE


def test_access_token_with_id_shape_is_rejected() -> None:
    """An "access" token that carries aud instead of client_id is refused."""
    claims = id_claims(token_use="access")
    assert rejected(sign(claims)).reason is Rejection.WRONG_CLIENT_ID


@pytest.mark.parametrize("aud", ["another-client", CLIENT_ID + "x", [CLIENT_ID], [CLIENT_ID, "other"], ""])
def test_wrong_audience_is_rejected(aud: Any) -> None:
    """An ID token for another app client (or a list audience) is refused."""
    assert rejected(sign(id_claims(aud=aud))).reason is Rejection.WRONG_AUDIENCE


@pytest.mark.parametrize("client_id", ["another-client", CLIENT_ID.upper(), None])
def test_wrong_client_id_is_rejected(client_id: Any) -> None:
    """An access token for another app client is refused."""
    claims = access_claims()
    claims["client_id"] = client_id
    assert rejected(sign(claims)).reason is Rejection.WRONG_CLIENT_ID


def test_expired_token_is_rejected_after_the_leeway() -> None:
    """A token is good until exp + leeway, and not a second longer."""
    token = sign(id_claims(exp=int(NOW) - 4))
    assert verify(token).expires_at == int(NOW) - 4
    assert rejected(sign(id_claims(exp=int(NOW) - 5))).reason is Rejection.EXPIRED
    assert rejected(token, now=NOW + 1).reason is Rejection.EXPIRED


def test_not_yet_valid_token_is_rejected() -> None:
    """A token whose nbf is beyond the leeway is refused; within the leeway it is fine."""
    assert rejected(sign(id_claims(nbf=int(NOW) + 60))).reason is Rejection.NOT_YET_VALID
    assert verify(sign(id_claims(nbf=int(NOW) + 5))).subject


def test_token_issued_in_the_future_is_rejected() -> None:
    """An iat beyond the leeway means a wrong clock or a forgery: refused."""
    assert rejected(sign(id_claims(iat=int(NOW) + 60))).reason is Rejection.ISSUED_IN_FUTURE


@pytest.mark.parametrize(
    "claims",
    [
        id_claims(exp=None),
        id_claims(iat=None),
        id_claims(exp="2030-01-01"),
        id_claims(exp=True),
        id_claims(sub=None),
        id_claims(sub=""),
        id_claims(sub=123),
    ],
    ids=["no exp", "no iat", "text exp", "boolean exp", "no sub", "empty sub", "numeric sub"],
)
def test_missing_or_mistyped_required_claims_are_rejected(claims: dict[str, Any]) -> None:
    """sub, exp and iat are required, with the right types."""
    assert rejected(sign(claims)).reason is Rejection.MISSING_CLAIM


# --- malformed ----------------------------------------------------------------------------------

VALID = sign(id_claims())


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (".".join(VALID.split(".")[:2]), Rejection.MALFORMED),  # two segments
        (VALID + ".x", Rejection.MALFORMED),  # four segments
        ("not a token", Rejection.MALFORMED),
        ("", Rejection.MALFORMED),
        ("!!!." + VALID.split(".", 1)[1], Rejection.MALFORMED),  # bad base64 in the header
        (b64(b"not json") + "." + VALID.split(".", 1)[1], Rejection.MALFORMED),
        (b64(b"[1, 2]") + "." + VALID.split(".", 1)[1], Rejection.MALFORMED),
        (VALID.split(".")[0] + ".%%%." + VALID.split(".")[2], Rejection.MALFORMED),  # bad base64 payload
        (VALID.split(".")[0] + "." + b64(b"not json") + "." + VALID.split(".")[2], Rejection.BAD_SIGNATURE),
        (VALID.rsplit(".", 1)[0] + ".", Rejection.BAD_SIGNATURE),  # no signature
        ("x" * 1_000_000, Rejection.TOO_LARGE),  # a megabyte of text
        (VALID + "A" * MAX_TOKEN_CHARS, Rejection.TOO_LARGE),
    ],
    ids=[
        "two segments",
        "four segments",
        "words",
        "empty",
        "bad base64 header",
        "header not JSON",
        "header not an object",
        "bad base64 payload",
        "payload not JSON",
        "empty signature",
        "a megabyte of text",
        "oversized token",
    ],
)
def test_malformed_tokens_are_rejected(token: str, reason: Rejection) -> None:
    """Anything that is not a well-formed, correctly signed JWT is refused with a reason."""
    assert rejected(token).reason is reason


def test_non_string_token_is_rejected() -> None:
    """A token that is not a string at all is refused, not crashed on."""
    with pytest.raises(TokenRejected) as info:
        verify_token(None, keys=KEYS, policy=POLICY, now=NOW)  # type: ignore[arg-type]
    assert info.value.reason is Rejection.MALFORMED


def test_policy_refuses_nonsense() -> None:
    """A policy needs an issuer, a client id, known token uses and a small leeway."""
    for kwargs in (
        {"issuer": "", "client_id": CLIENT_ID},
        {"issuer": ISSUER, "client_id": ""},
        {"issuer": ISSUER, "client_id": CLIENT_ID, "token_uses": frozenset({"refresh"})},
        {"issuer": ISSUER, "client_id": CLIENT_ID, "token_uses": frozenset()},
        {"issuer": ISSUER, "client_id": CLIENT_ID, "leeway": 3600},
    ):
        with pytest.raises(ValueError):
            TokenPolicy(**kwargs)  # type: ignore[arg-type]


# --- the JWKS cache -----------------------------------------------------------------------------


class Endpoint:
    """A JWKS endpoint in memory: counts fetches, can rotate keys or fail."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.fetches = 0
        self.fail = False

    def __call__(self) -> Mapping[str, Any]:
        self.fetches += 1
        if self.fail:
            raise OSError("connection refused")
        return self.document


def key_set(endpoint: Endpoint, clock: Clock, **kwargs: Any) -> JwksKeySet:
    return JwksKeySet(endpoint, clock=clock, min_refetch_interval=10, max_age=3600, **kwargs)


def test_jwks_is_fetched_once_and_cached() -> None:
    """Many verifications with a known kid fetch the JWKS once."""
    endpoint, clock = Endpoint(jwks((KEY, KID))), Clock()
    keys = key_set(endpoint, clock)
    for _ in range(50):
        verify(sign(id_claims()), keys=keys)
        clock.now += 1
    assert endpoint.fetches == 1


def test_flood_of_unknown_kids_fetches_at_most_once_per_10_seconds() -> None:
    """Thousands of made-up kids in 25 s reach the JWKS endpoint 3 times: at 0, 10 and 20 s."""
    endpoint, clock = Endpoint(jwks((KEY, KID))), Clock()
    keys = key_set(endpoint, clock)
    fetch_times = []
    token = sign(id_claims())
    rest = token.split(".", 1)[1]
    for i in range(2500):
        clock.now = 1000 + i / 100
        kid_header = b64(json.dumps({"alg": "RS256", "kid": f"made-up-{i}"}).encode())
        before = endpoint.fetches
        assert rejected(f"{kid_header}.{rest}", keys=keys).reason is Rejection.UNKNOWN_KID
        if endpoint.fetches != before:
            fetch_times.append(round(clock.now - 1000, 2))
    assert fetch_times == [0, 10, 20]


def test_rotated_key_is_accepted_after_one_refetch() -> None:
    """A token signed with a new key is refused until the limit allows a refetch, then accepted."""
    endpoint, clock = Endpoint(jwks((KEY, KID))), Clock()
    keys = key_set(endpoint, clock)
    verify(sign(id_claims()), keys=keys)
    endpoint.document = jwks((KEY, KID), (OTHER_KEY, "key-2"))  # the pool rotates
    rotated = sign(id_claims(), key=OTHER_KEY, kid="key-2")
    clock.now += 5
    assert rejected(rotated, keys=keys).reason is Rejection.UNKNOWN_KID
    assert endpoint.fetches == 1  # too soon to ask again
    clock.now += 5
    assert verify(rotated, keys=keys).subject
    assert endpoint.fetches == 2
    assert verify(sign(id_claims()), keys=keys).subject  # the old key still works
    assert endpoint.fetches == 2


def test_unreachable_jwks_is_not_hammered() -> None:
    """While the JWKS endpoint is down, tokens are refused and it is asked once per 10 s."""
    endpoint, clock = Endpoint(jwks((KEY, KID))), Clock()
    endpoint.fail = True
    keys = key_set(endpoint, clock)
    for _ in range(100):
        assert rejected(sign(id_claims()), keys=keys).reason is Rejection.KEYS_UNAVAILABLE
        clock.now += 0.05
    assert endpoint.fetches == 1
    endpoint.fail = False
    clock.now += 10
    assert verify(sign(id_claims()), keys=keys).subject
    assert endpoint.fetches == 2


def test_failed_refresh_keeps_the_cached_keys() -> None:
    """An old JWKS due for a refresh keeps working when the refresh fails."""
    endpoint, clock = Endpoint(jwks((KEY, KID))), Clock()
    keys = key_set(endpoint, clock)
    verify(sign(id_claims()), keys=keys)
    endpoint.fail = True
    clock.now += 3600
    assert verify(sign(id_claims()), keys=keys).subject
    assert endpoint.fetches == 2


def test_jwks_older_than_max_age_is_fetched_again() -> None:
    """A revoked key leaves the cache within max_age, even if its kid is still presented."""
    endpoint, clock = Endpoint(jwks((KEY, KID))), Clock()
    keys = key_set(endpoint, clock)
    verify(sign(id_claims()), keys=keys)
    endpoint.document = jwks((OTHER_KEY, "key-2"))  # KEY revoked
    clock.now += 3599
    assert verify(sign(id_claims()), keys=keys).subject
    clock.now += 1
    assert rejected(sign(id_claims()), keys=keys).reason is Rejection.UNKNOWN_KID


def test_garbage_jwks_counts_as_unavailable() -> None:
    """A JWKS endpoint that answers nonsense leaves no usable key."""
    for document in ({"keys": "nope"}, {"no": "keys"}):
        endpoint = Endpoint(document)
        with pytest.raises(TokenRejected) as info:
            verify(sign(id_claims()), keys=key_set(endpoint, Clock()))
        assert info.value.reason is Rejection.KEYS_UNAVAILABLE


class SlowEndpoint(Endpoint):
    """A JWKS endpoint that answers only when the test lets it."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        super().__init__(document)
        self.release = threading.Event()

    def __call__(self) -> Mapping[str, Any]:
        self.release.wait(10)
        return super().__call__()


def test_lookups_waiting_for_a_slow_jwks_fail_fast_and_share_one_fetch() -> None:
    """While a JWKS fetch hangs, lookups give up `wait` after it started; one fetch in flight, its keys then serve."""
    endpoint, clock = SlowEndpoint(jwks((KEY, KID))), Clock()
    keys = key_set(endpoint, clock, wait=0.2)
    token = sign(id_claims())
    with ThreadPoolExecutor(max_workers=6) as pool:
        started = time.monotonic()
        outcomes = list(pool.map(lambda _: rejected(token, keys=keys).reason, range(6)))
        took = time.monotonic() - started
    assert outcomes == [Rejection.KEYS_UNAVAILABLE] * 6
    assert took < 2.0, f"lookups waited for the fetch: {took:.1f} s"
    endpoint.release.set()
    for _ in range(100):  # past its deadline, lookups fail at once until the fetch in flight lands
        try:
            assert verify(token, keys=keys).subject
            break
        except TokenRejected as error:
            assert error.reason is Rejection.KEYS_UNAVAILABLE
            time.sleep(0.1)
    else:
        pytest.fail("the keys never arrived")
    assert endpoint.fetches == 1
