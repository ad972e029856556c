"""manage.py signing_keys: make and rotate the built-in issuer's shared keys (docs/auth.md).

The keys live in the Secrets Manager secret AUTH_SIGNING_KEYS_SECRET (or --secret) as
{"current": PEM, "previous": [...], "next": [...]}. Each step writes a new version of the
secret; every host picks it up within AUTH_SIGNING_KEYS_MAX_AGE:

    new       print a fresh ring (for `aws secretsmanager create-secret --secret-string`)
    show      the key ids in the secret, by role (never a private key)
    add-next  a new key that verifies but does not sign yet
    promote   the next key signs; the current one moves to previous (still verifies)
    retire    drop the previous keys (once the tokens they signed have expired)
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import issuer

STEPS = ("new", "show", "add-next", "promote", "retire")


def new_pem() -> str:
    key = issuer.SigningKey.generate().private_key
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def as_document(text: str) -> dict[str, Any]:
    """The secret's text as a ring document (a bare PEM is a ring of one)."""
    issuer.parse_key_ring(text, source="the secret")  # refuses anything malformed
    if text.strip().startswith("{"):
        document = dict(json.loads(text))
    else:
        document = {"current": text.strip() + "\n"}
    return {"current": document["current"], "previous": document.get("previous", []), "next": document.get("next", [])}


def rotate(document: dict[str, Any], step: str, *, fresh_pem: str | None = None) -> dict[str, Any]:
    """The ring after one rotation step (pure)."""
    ring = {"current": document["current"], "previous": list(document["previous"]), "next": list(document["next"])}
    if step == "add-next":
        if ring["next"]:
            raise CommandError("there is a next key already: promote it first")
        ring["next"] = [fresh_pem or new_pem()]
    elif step == "promote":
        if not ring["next"]:
            raise CommandError("no next key to promote: add-next first, and wait for every host to read it")
        ring["previous"] = [ring["current"], *ring["previous"]]
        ring["current"] = ring["next"].pop(0)
    elif step == "retire":
        if not ring["previous"]:
            raise CommandError("no previous key to retire")
        ring["previous"] = []
    else:
        raise CommandError(f"unknown step {step!r}")
    return ring


def kids(document: dict[str, Any]) -> dict[str, Any]:
    ring = issuer.parse_key_ring(json.dumps(document))
    by_pem = {pem: issuer.parse_key_ring(pem).current.kid for pem in [*document["previous"], *document["next"]]}
    return {
        "current": ring.current.kid,
        "previous": [by_pem[p] for p in document["previous"]],
        "next": [by_pem[p] for p in document["next"]],
    }


class Command(BaseCommand):
    help = "Make and rotate the built-in issuer's keys in the shared Secrets Manager secret."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("step", choices=STEPS)
        parser.add_argument("--secret", default="", help="secret name or ARN (default: AUTH_SIGNING_KEYS_SECRET)")

    def handle(self, *args: Any, **options: Any) -> None:
        step: str = options["step"]
        if step == "new":
            self.stdout.write(json.dumps({"current": new_pem()}))
            return
        secret_id = options["secret"] or settings.AUTH_SIGNING_KEYS_SECRET
        if not secret_id:
            raise CommandError("name the secret: --secret or AUTH_SIGNING_KEYS_SECRET")
        import boto3

        client = boto3.client("secretsmanager", region_name=settings.AWS_REGION)
        document = as_document(str(client.get_secret_value(SecretId=secret_id)["SecretString"]))
        if step != "show":
            document = rotate(document, step)
            client.put_secret_value(SecretId=secret_id, SecretString=json.dumps(document))
        self.stdout.write(json.dumps(kids(document)))
