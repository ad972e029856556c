"""Secrets Manager, read at run time: secrets that rotate or are shared by every task.

One reader for the built-in issuer's key ring (accounts.issuer) and the database password
RDS rotates (chatsite.db.password).
"""

from __future__ import annotations


def secret_text(secret_id: str) -> str:
    """The SecretString of a Secrets Manager secret (boto3 reads AWS_ENDPOINT_URL itself)."""
    import boto3
    from django.conf import settings

    client = boto3.client("secretsmanager", region_name=settings.AWS_REGION)
    return str(client.get_secret_value(SecretId=secret_id)["SecretString"])
