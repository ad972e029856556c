"""accounts.cognito against the moto server: InitiateAuth, refresh, SECRET_HASH, the JWKS over HTTP."""

from __future__ import annotations

import base64
import hashlib
import time
import urllib.parse

import pytest

from accounts import cognito
from accounts.tokens import JwksKeySet, Rejection, TokenPolicy, TokenRejected, http_fetcher, verify_token
from tests.fixtures.aws import MotoServer
from tests.fixtures.cognito import CognitoPool, make_cognito_pool


def config_of(pool: CognitoPool) -> cognito.CognitoConfig:
    return cognito.CognitoConfig(
        region=pool.region,
        user_pool_id=pool.pool_id,
        client_id=pool.client_id,
        client_secret=pool.client_secret,
        jwks_url=pool.jwks_url,
    )


@pytest.fixture
def config(cognito_pool: CognitoPool, aws_env: dict[str, str]) -> cognito.CognitoConfig:
    return config_of(cognito_pool)


def test_password_sign_in_returns_tokens_that_verify_against_the_pools_jwks(
    config: cognito.CognitoConfig, cognito_pool: CognitoPool
) -> None:
    """InitiateAuth gives ID and access tokens; the pool's JWKS, fetched over HTTP, verifies both."""
    tokens = cognito.password_auth(config, username=cognito_pool.username, password=cognito_pool.password)
    assert tokens.refresh_token and tokens.expires_in > 0
    keys = JwksKeySet(http_fetcher(config.keys_url))
    policy = TokenPolicy(issuer=config.issuer, client_id=config.client_id)
    id_token = verify_token(tokens.id_token, keys=keys, policy=policy, now=time.time())
    access = verify_token(tokens.access_token, keys=keys, policy=policy, now=time.time())
    assert id_token.subject == access.subject
    assert (id_token.token_use, access.token_use) == ("id", "access")
    assert id_token.username == access.username == cognito_pool.username
    assert id_token.groups == ("moderators",)
    assert keys.fetches == 1


def test_the_issuer_is_the_aws_url_not_the_stand_in(config: cognito.CognitoConfig, cognito_pool: CognitoPool) -> None:
    """moto serves the keys on loopback but signs iss as AWS: a policy with the stand-in URL refuses."""
    tokens = cognito.password_auth(config, username=cognito_pool.username, password=cognito_pool.password)
    assert config.issuer == f"https://cognito-idp.us-east-1.amazonaws.com/{cognito_pool.pool_id}"
    wrong = TokenPolicy(issuer=f"{cognito_pool.moto.endpoint_url}/{cognito_pool.pool_id}", client_id=config.client_id)
    with pytest.raises(TokenRejected) as info:
        verify_token(tokens.id_token, keys=JwksKeySet(http_fetcher(config.keys_url)), policy=wrong, now=time.time())
    assert info.value.reason is Rejection.WRONG_ISSUER


def test_wrong_password_is_a_credentials_error(config: cognito.CognitoConfig, cognito_pool: CognitoPool) -> None:
    """A wrong password or an unknown user is reported as bad credentials, not an outage."""
    for username, password in ((cognito_pool.username, "wrong-password-1!"), ("nobody", "whatever-1!")):
        with pytest.raises(cognito.CognitoError) as info:
            cognito.password_auth(config, username=username, password=password)
        assert info.value.bad_credentials


def test_refresh_token_gives_new_tokens(config: cognito.CognitoConfig, cognito_pool: CognitoPool) -> None:
    """REFRESH_TOKEN_AUTH turns a refresh token into new ID and access tokens; garbage is refused."""
    tokens = cognito.password_auth(config, username=cognito_pool.username, password=cognito_pool.password)
    assert tokens.refresh_token is not None
    refreshed = cognito.refresh_auth(config, refresh_token=tokens.refresh_token)
    assert refreshed.access_token and refreshed.id_token and refreshed.refresh_token is None
    with pytest.raises(cognito.CognitoError) as info:
        cognito.refresh_auth(config, refresh_token="not-a-refresh-token")
    assert info.value.code == "NotAuthorizedException"


def test_client_secret_adds_a_secret_hash(moto_server: MotoServer, aws_env: dict[str, str]) -> None:
    """With an app client secret, sign-in and refresh carry SECRET_HASH; a wrong username breaks it."""
    pool = make_cognito_pool(moto_server, secret=True, username="dave", groups=())
    config = config_of(pool)
    assert config.client_secret
    tokens = cognito.password_auth(config, username="dave", password=pool.password)
    assert tokens.refresh_token is not None
    assert cognito.refresh_auth(config, refresh_token=tokens.refresh_token, username="dave").access_token
    with pytest.raises(cognito.CognitoError) as info:
        cognito.refresh_auth(config, refresh_token=tokens.refresh_token)
    assert info.value.code == "UsernameRequired"
    with pytest.raises(cognito.CognitoError) as info:
        cognito.refresh_auth(config, refresh_token=tokens.refresh_token, username="mallory")
    assert info.value.code == "NotAuthorizedException"


def test_unreachable_cognito_is_an_outage_not_bad_credentials(
    cognito_pool: CognitoPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When cognito-idp cannot be reached the error says so, and is not a wrong password."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with pytest.raises(cognito.CognitoError) as info:
        cognito.password_auth(config_of(cognito_pool), username="carol", password="x-123456789")
    assert info.value.code == "Unavailable" and not info.value.bad_credentials


def test_hosted_ui_urls_carry_pkce_and_state() -> None:
    """The authorize URL asks for a code with an S256 challenge; the verifier hashes to it."""
    config = cognito.CognitoConfig(
        region="us-east-1",
        user_pool_id="us-east-1_x",
        client_id="cid",
        domain=cognito.hosted_ui_base("auth.example.com/"),
    )
    verifier, challenge = cognito.pkce_pair()
    assert 43 <= len(verifier) <= 128
    assert challenge == base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    url = urllib.parse.urlsplit(
        cognito.authorize_url(
            config, redirect_uri="https://chat.example/cb/", state="s1", code_challenge=challenge, nonce="n1"
        )
    )
    query = dict(urllib.parse.parse_qsl(url.query))
    assert (url.scheme, url.netloc, url.path) == ("https", "auth.example.com", "/oauth2/authorize")
    assert query == {
        "response_type": "code",
        "client_id": "cid",
        "redirect_uri": "https://chat.example/cb/",
        "scope": "openid email profile",
        "state": "s1",
        "nonce": "n1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    logout = urllib.parse.urlsplit(cognito.logout_url(config, logout_uri="https://chat.example/accounts/login/"))
    assert logout.path == "/logout" and dict(urllib.parse.parse_qsl(logout.query))["client_id"] == "cid"
