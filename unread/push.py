"""Web Push (RFC 8030) with VAPID (RFC 8292) and an aes128gcm payload (RFC 8291), and mobile
push through Amazon SNS platform endpoints: the only module that talks to push services.

Web Push is built here from `http_ece` (the payload encryption pywebpush uses) and PyJWT's
ES256 (the VAPID token): pywebpush 2.x imports aiohttp at module load, a compiled stack this
project does not otherwise need. Requests go out with urllib, off the event loop.

Everything is off until configured: CHAT_VAPID_PRIVATE_KEY and CHAT_VAPID_SUBJECT switch on
Web Push (both or neither); CHAT_PUSH_SNS_APNS_ARN / CHAT_PUSH_SNS_FCM_ARN switch on mobile
push, one platform application each. docs/operations.md "Push notifications".
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)

# A push service keeps an undelivered notification this long (its TTL header), seconds.
PUSH_TTL: Final = 24 * 3600
# How long a VAPID token is valid: at most 24 h (RFC 8292); 12 h leaves room for clock skew.
VAPID_LIFETIME: Final = 12 * 3600
SEND_TIMEOUT: Final = 10.0


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def b64url(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii")


def check_settings() -> None:
    """Fail at start with a clear message when push is half configured."""
    vapid = {
        "CHAT_VAPID_PRIVATE_KEY": settings.CHAT_VAPID_PRIVATE_KEY,
        "CHAT_VAPID_SUBJECT": settings.CHAT_VAPID_SUBJECT,
    }
    given = [name for name, value in vapid.items() if value]
    if given and len(given) != len(vapid):
        missing = sorted(set(vapid) - set(given))
        raise ImproperlyConfigured(
            f"Web Push is half configured: {', '.join(given)} set but {', '.join(missing)} missing "
            "(set both, or neither to switch Web Push off; docs/operations.md)"
        )
    if given:
        try:
            vapid_key()
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"CHAT_VAPID_PRIVATE_KEY is not a P-256 private key (base64url of 32 bytes): {exc}"
            ) from None
        subject = settings.CHAT_VAPID_SUBJECT
        if not subject.startswith(("mailto:", "https://")):
            raise ImproperlyConfigured("CHAT_VAPID_SUBJECT must be a mailto: or https: URL (RFC 8292)")


def web_push_enabled() -> bool:
    return bool(settings.CHAT_VAPID_PRIVATE_KEY and settings.CHAT_VAPID_SUBJECT)


def vapid_key() -> ec.EllipticCurvePrivateKey:
    raw = b64url_decode(settings.CHAT_VAPID_PRIVATE_KEY)
    if len(raw) != 32:
        raise ValueError(f"{len(raw)} bytes")
    return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())


def public_key_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def application_server_key() -> str | None:
    """The VAPID public key browsers subscribe with (base64url), or None when push is off."""
    return b64url(public_key_bytes(vapid_key())) if web_push_enabled() else None


def generate_vapid_private_key() -> str:
    """A new VAPID private key for CHAT_VAPID_PRIVATE_KEY (manage.py vapid_keys)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


# Subscriptions --------------------------------------------------------------------------------


class BadSubscription(ValueError):
    """A subscription or token the API refuses: `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def endpoint_allowed(endpoint: str, *, resolve: bool) -> None:
    """Refuse an endpoint that is not https, or (unless CHAT_PUSH_ALLOW_PRIVATE_ENDPOINTS, for
    tests and development) that points at a loopback, private or link-local address: the push
    sender must not be a way to reach the server's own network. `resolve`: also check the
    addresses the name has now (at send time)."""
    parts = urlsplit(endpoint)
    if settings.CHAT_PUSH_ALLOW_PRIVATE_ENDPOINTS and parts.scheme in {"http", "https"} and parts.hostname:
        return
    if parts.scheme != "https" or not parts.hostname:
        raise BadSubscription("endpoint", "the endpoint must be an https URL")
    host = parts.hostname
    addresses: list[str] = []
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            raise BadSubscription("endpoint", "the endpoint points at a private address") from None
        if resolve:
            try:
                infos = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
            except OSError:
                raise BadSubscription("endpoint", "the endpoint's host does not resolve") from None
            addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if not ip.is_global:
            raise BadSubscription("endpoint", "the endpoint points at a private address")


@dataclass(frozen=True, slots=True)
class Subscription:
    endpoint: str
    p256dh: str
    auth: str


def parse_subscription(body: Any) -> Subscription:
    """A browser's PushSubscription.toJSON(): {"endpoint", "keys": {"p256dh", "auth"}}."""
    if not isinstance(body, dict):
        raise BadSubscription("subscription", "send the PushSubscription as a JSON object")
    endpoint = body.get("endpoint")
    if not isinstance(endpoint, str) or not 10 <= len(endpoint) <= 1000:
        raise BadSubscription("endpoint", "'endpoint' must be a URL of up to 1000 characters")
    endpoint_allowed(endpoint, resolve=False)
    keys = body.get("keys")
    if not isinstance(keys, dict):
        raise BadSubscription("keys", "'keys' must hold 'p256dh' and 'auth'")
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    try:
        point = b64url_decode(p256dh) if isinstance(p256dh, str) and len(p256dh) < 200 else b""
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except (ValueError, TypeError):
        raise BadSubscription("keys.p256dh", "'keys.p256dh' must be a P-256 public key (base64url)") from None
    try:
        secret = b64url_decode(auth) if isinstance(auth, str) and len(auth) < 100 else b""
    except ValueError:
        secret = b""
    if len(secret) != 16:
        raise BadSubscription("keys.auth", "'keys.auth' must be 16 bytes (base64url)")
    return Subscription(endpoint=endpoint, p256dh=p256dh, auth=auth)  # type: ignore[arg-type]


# Sending ------------------------------------------------------------------------------------


def vapid_header(endpoint: str, *, now: float | None = None) -> str:
    """`Authorization: vapid t=<JWT>, k=<public key>` for one push service (RFC 8292)."""
    key = vapid_key()
    parts = urlsplit(endpoint)
    claims = {
        "aud": f"{parts.scheme}://{parts.netloc}",
        "exp": int((now if now is not None else time.time()) + VAPID_LIFETIME),
        "sub": settings.CHAT_VAPID_SUBJECT,
    }
    token = jwt.encode(claims, key, algorithm="ES256")
    return f"vapid t={token}, k={b64url(public_key_bytes(key))}"


def encrypt(payload: bytes, subscription: Subscription) -> bytes:
    """The aes128gcm body for one subscription (RFC 8291), with a fresh sender key."""
    sender = ec.generate_private_key(ec.SECP256R1())
    return bytes(
        http_ece.encrypt(
            payload,
            private_key=sender,
            dh=b64url_decode(subscription.p256dh),
            auth_secret=b64url_decode(subscription.auth),
            version="aes128gcm",
        )
    )


def send_web_push(subscription: Subscription, message: dict[str, Any]) -> int:
    """POST one notification to the subscription's push service; return the HTTP status
    (404 and 410: the subscription is gone). Blocking: call it off the event loop."""
    endpoint_allowed(subscription.endpoint, resolve=True)
    body = encrypt(json.dumps(message, ensure_ascii=False).encode("utf-8"), subscription)
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked by endpoint_allowed
        subscription.endpoint,
        data=body,
        method="POST",
        headers={
            "Authorization": vapid_header(subscription.endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(PUSH_TTL),
            "Urgency": "high",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


# Mobile: Amazon SNS platform endpoints ------------------------------------------------------


def sns_application(platform: str) -> str:
    """The SNS platform application ARN of a platform ("apns", "fcm"), or "" when off."""
    return str({"apns": settings.CHAT_PUSH_SNS_APNS_ARN, "fcm": settings.CHAT_PUSH_SNS_FCM_ARN}.get(platform, ""))


def _sns() -> Any:
    import boto3

    return boto3.client(
        "sns", region_name=settings.AWS_REGION, endpoint_url=settings.CHAT_PUSH_SNS_ENDPOINT_URL or None
    )


def sns_register(*, platform: str, token: str, user_id: str) -> str:
    """Create (or find) the platform endpoint of a device token; return its ARN."""
    response = _sns().create_platform_endpoint(
        PlatformApplicationArn=sns_application(platform), Token=token, CustomUserData=user_id
    )
    return str(response["EndpointArn"])


def sns_publish(*, endpoint_arn: str, message: dict[str, Any]) -> None:
    """Publish one notification to a device, with the APNs and FCM shapes of it."""
    title, body = message.get("title", ""), message.get("body", "")
    data = {"roomId": message.get("roomId"), "seq": message.get("seq"), "url": message.get("url")}
    payload = {
        "default": f"{title}: {body}",
        "APNS": json.dumps(
            {"aps": {"alert": {"title": title, "body": body}, "thread-id": message.get("roomId")}, **data}
        ),
        "GCM": json.dumps({"notification": {"title": title, "body": body}, "data": data}),
    }
    _sns().publish(TargetArn=endpoint_arn, Message=json.dumps(payload), MessageStructure="json")


def sns_delete(endpoint_arn: str) -> None:
    _sns().delete_endpoint(EndpointArn=endpoint_arn)
