"""Chatsite's CloudFormation template, generated: `python -m deploy.stack` writes it.

The template (deploy/cloudformation/chatsite.yaml, committed) is built here so that its
DynamoDB tables come from the one schema definition, chat/storage/schema.py, which
`manage.py create_dynamodb_tables` also uses; deploy/tests prove the two agree. Edit this
module, not the YAML; `python -m deploy.stack --check` fails when the YAML is stale.

What the stack holds: the DynamoDB tables (TTL, point-in-time recovery, encryption), a
Cognito user pool and app client, a private S3 bucket behind CloudFront with origin access
control, the private uploads bucket and its own signed-URL distribution, least-privilege IAM
for the app and for the static push, a log group, a CloudWatch dashboard and alarms.
The load balancer is a second template (deploy/cloudformation/load-balancer.yaml), for an
existing VPC and daphne on EC2 with deploy/systemd. The third, deploy/cloudformation/fleet.yaml
(deploy/fleet.py), is the whole ECS path: VPC, PostgreSQL, Redis, secrets, the service and the
same load balancer; it imports this stack's exported outputs. deploy/README.md says which to use.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Final

import yaml

from chat.storage import schema
from deploy import fleet
from deploy.cfn import getatt, ref, sub
from deploy.cfn import tags as _tags
from uploads.rules import DOWNLOAD_HEADERS

TEMPLATE_DIR: Final = Path(__file__).resolve().parent / "cloudformation"

# The DynamoDB actions the app's role may use, on Chatsite's tables and their indexes only.
# chat/storage/dynamodb.py calls get_item, batch_get_item, put_item, update_item, delete_item,
# batch_write_item (closed sockets' rows), query, scan and transact_write_items; a transaction is authorised per item
# action (its Update and Put). deploy/tests derives the same list from the store's calls, so a new call fails
# there before it fails in production. No CreateTable, no DeleteTable: the stack owns tables.
APP_DYNAMODB_ACTIONS: Final = (
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:UpdateItem",
)

# An ALB closes a connection after this long without data frames (WebSocket pings do not
# count). The browser client sends a heartbeat frame every ~25 s, and daphne pings every
# 25 s (deploy/systemd, deploy/Dockerfile): 120 s tolerates a few missed heartbeats.
DEFAULT_IDLE_TIMEOUT_SECONDS: Final = 120
# The target check: liveness plus "not draining" (chatsite/ops/health.py). Never /readyz: a
# shared dependency's blip (a Redis failover) would fail every target at once.
HEALTH_CHECK_PATH: Final = "/healthz"
HEALTH_CHECK_INTERVAL_SECONDS: Final = 5
UNHEALTHY_THRESHOLD: Final = 2
# A drain closes a process's sockets over CHAT_DRAIN_SECONDS (20 s by default); the balancer
# keeps a deregistered target's connections this long, so the drain ends inside it.
DEREGISTRATION_DELAY_SECONDS: Final = 30
APP_PORT: Final = 8000
# On EC2 each daphne process is its own target on its own port (chatsite@8000, chatsite@8001,
# ... one per core): the app security group admits the whole range from the balancer.
APP_PORT_LAST: Final = 8015

# AWS-managed CloudFront policies (fixed ids, documented by AWS).
SECURITY_HEADERS_POLICY_ID: Final = "67f7725c-6f97-4210-82d7-5512b31e9d03"  # Managed-SecurityHeadersPolicy
CACHING_DISABLED_POLICY_ID: Final = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # Managed-CachingDisabled
# Managed-AllViewerExceptHostHeader: every header (the WebSocket upgrade's too), cookie and
# query string goes to the load balancer, with the origin's own Host (its certificate's name).
ALL_VIEWER_EXCEPT_HOST_POLICY_ID: Final = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
# What the one distribution sends to the load balancer; everything else is the React app in
# S3. /static/* is Django's own files, which whitenoise serves from the same release as the
# pages (hashed names, cached for a year).
APP_PATHS: Final = ("/static/*", "/ws/*", "/api/*", "/accounts/*", "/admin/*", "/.well-known/*")


def table_resource_name(table: schema.Table) -> str:
    return f"{table.logical_name}Table"


def table_name(table: schema.Table) -> dict[str, Any]:
    return sub(f"${{AWS::StackName}}-{table.logical_name}")


# Parameters and conditions -----------------------------------------------------------


def parameters() -> dict[str, Any]:
    return {
        "ServiceName": {
            "Type": "String",
            "Default": "chatsite",
            "Description": "The Service dimension of the app's metrics (METRICS_EMF_SERVICE).",
        },
        "MetricsNamespace": {
            "Type": "String",
            "Default": "Chatsite",
            "Description": "CloudWatch namespace of the app's EMF metrics (METRICS_EMF_NAMESPACE).",
        },
        "AlarmEmail": {
            "Type": "String",
            "Default": "",
            "Description": "Optional: an address subscribed to the alarm topic.",
        },
        "CallbackUrls": {
            "Type": "CommaDelimitedList",
            "Default": "",
            "Description": "Optional: Hosted UI callback URLs (https://HOST/accounts/cognito/callback/). "
            "Empty: no Hosted UI, sign-in with username and password only.",
        },
        "LogoutUrls": {
            "Type": "CommaDelimitedList",
            "Default": "",
            "Description": "Optional: Hosted UI sign-out URLs.",
        },
        "CognitoDomainPrefix": {
            "Type": "String",
            "Default": "",
            "Description": "Optional: prefix of the Hosted UI domain (PREFIX.auth.REGION.amazoncognito.com).",
        },
        "StaticDomainName": {
            "Type": "String",
            "Default": "",
            "Description": "Optional: a domain name for the CloudFront distribution (needs StaticCertificateArn).",
        },
        "AppDomainName": {
            "Type": "String",
            "Default": "",
            "Description": "Optional: the app's host name behind the load balancer (its certificate's name). "
            "Set, the distribution also sends /static/, /ws/, /api/, /accounts/, /admin/ there.",
        },
        "StaticCertificateArn": {
            "Type": "String",
            "Default": "",
            "Description": "Optional: ACM certificate in us-east-1 for StaticDomainName.",
        },
        "PriceClass": {
            "Type": "String",
            "Default": "PriceClass_100",
            "AllowedValues": ["PriceClass_100", "PriceClass_200", "PriceClass_All"],
        },
        "ErrorRateThresholdPercent": {
            "Type": "Number",
            "Default": 5,
            "Description": "Alarm when server errors exceed this percentage of message sends.",
        },
        "FailedConnectionsThreshold": {
            "Type": "Number",
            "Default": 10,
            "Description": "Alarm when this many handshakes fail server-side in five minutes.",
        },
        "ThrottleThreshold": {
            "Type": "Number",
            "Default": 10,
            "Description": "Alarm when DynamoDB throttles this many requests in five minutes.",
        },
        "UploadOrigins": {
            "Type": "CommaDelimitedList",
            "Default": "",
            "Description": "Optional: the site's origins (https://HOST) that post shared files to the uploads "
            "bucket (CORS). Empty: no browser can upload.",
        },
        "UploadsPublicKeyPem": {
            "Type": "String",
            "Default": "",
            "Description": "The public half (PEM, RSA 2048) of the key the app signs download URLs with "
            "(deploy/README.md). Set, the uploads distribution serves shared files (needed in production); "
            "empty, it is not created.",
        },
    }


def conditions() -> dict[str, Any]:
    return {
        "HasAlarmEmail": {"Fn::Not": [{"Fn::Equals": [ref("AlarmEmail"), ""]}]},
        "HasHostedUi": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", ref("CallbackUrls")]}, ""]}]},
        "HasCognitoDomain": {"Fn::Not": [{"Fn::Equals": [ref("CognitoDomainPrefix"), ""]}]},
        "HasStaticDomain": {"Fn::Not": [{"Fn::Equals": [ref("StaticDomainName"), ""]}]},
        "HasAppOrigin": {"Fn::Not": [{"Fn::Equals": [ref("AppDomainName"), ""]}]},
        "HasUploadOrigins": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", ref("UploadOrigins")]}, ""]}]},
        "HasUploadsDistribution": {"Fn::Not": [{"Fn::Equals": [ref("UploadsPublicKeyPem"), ""]}]},
    }


# DynamoDB ----------------------------------------------------------------------------


def index_names() -> set[str]:
    return {index.name for table in schema.TABLES for index in table.indexes}


def table_resources(without_indexes: frozenset[str] = frozenset()) -> dict[str, Any]:
    """One AWS::DynamoDB::Table per schema table, with PITR and encryption added.

    `without_indexes` leaves those global secondary indexes out: DynamoDB adds one index per
    table update, so a stack that gains two on one table is upgraded in two deploys, the
    first without one of them (deploy/README.md).
    """
    resources: dict[str, Any] = {}
    for table in schema.TABLES:
        table = dataclasses.replace(table, indexes=tuple(i for i in table.indexes if i.name not in without_indexes))
        properties = schema.cloudformation_properties(table, table_name(table))
        properties["PointInTimeRecoverySpecification"] = {"PointInTimeRecoveryEnabled": True}
        # KMS with the AWS-managed key (aws/dynamodb): visible in CloudTrail, no key to manage.
        properties["SSESpecification"] = {"SSEEnabled": True}
        properties["DeletionProtectionEnabled"] = True
        properties["Tags"] = _tags(table.logical_name)
        resources[table_resource_name(table)] = {
            "Type": "AWS::DynamoDB::Table",
            # Chat history outlives a stack: deleting or replacing the stack keeps the tables.
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": properties,
        }
    return resources


def _table_arns() -> list[Any]:
    arns: list[Any] = []
    for table in schema.TABLES:
        arn = getatt(table_resource_name(table), "Arn")
        arns.append(arn)
        if table.indexes:
            arns.append(sub(f"${{{table_resource_name(table)}.Arn}}/index/*"))
    return arns


# Cognito -----------------------------------------------------------------------------


def cognito_resources() -> dict[str, Any]:
    return {
        "UserPool": {
            "Type": "AWS::Cognito::UserPool",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "UserPoolName": sub("${AWS::StackName}-users"),
                "UsernameConfiguration": {"CaseSensitive": False},
                "AutoVerifiedAttributes": ["email"],
                "AccountRecoverySetting": {"RecoveryMechanisms": [{"Name": "verified_email", "Priority": 1}]},
                "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": False},
                "Policies": {
                    "PasswordPolicy": {
                        "MinimumLength": 12,
                        "RequireLowercase": True,
                        "RequireUppercase": False,
                        "RequireNumbers": True,
                        "RequireSymbols": False,
                        "TemporaryPasswordValidityDays": 3,
                    }
                },
                "MfaConfiguration": "OPTIONAL",
                "EnabledMfas": ["SOFTWARE_TOKEN_MFA"],
                "Schema": [
                    {"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True},
                    {"Name": "preferred_username", "AttributeDataType": "String", "Mutable": True},
                ],
                "UserPoolTags": {"app": "chatsite"},
            },
        },
        "UserPoolClient": {
            "Type": "AWS::Cognito::UserPoolClient",
            "Properties": {
                "ClientName": sub("${AWS::StackName}-app"),
                "UserPoolId": ref("UserPool"),
                # A public client: the React app and the API's InitiateAuth use no secret.
                "GenerateSecret": False,
                "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
                "PreventUserExistenceErrors": "ENABLED",
                "EnableTokenRevocation": True,
                "AccessTokenValidity": 60,
                "IdTokenValidity": 60,
                "RefreshTokenValidity": 30,
                "TokenValidityUnits": {"AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "days"},
                "SupportedIdentityProviders": ["COGNITO"],
                "AllowedOAuthFlowsUserPoolClient": {"Fn::If": ["HasHostedUi", True, ref("AWS::NoValue")]},
                "AllowedOAuthFlows": {"Fn::If": ["HasHostedUi", ["code"], ref("AWS::NoValue")]},
                "AllowedOAuthScopes": {"Fn::If": ["HasHostedUi", ["openid", "email", "profile"], ref("AWS::NoValue")]},
                "CallbackURLs": {"Fn::If": ["HasHostedUi", ref("CallbackUrls"), ref("AWS::NoValue")]},
                "LogoutURLs": {"Fn::If": ["HasHostedUi", ref("LogoutUrls"), ref("AWS::NoValue")]},
            },
        },
        "UserPoolDomain": {
            "Type": "AWS::Cognito::UserPoolDomain",
            "Condition": "HasCognitoDomain",
            "Properties": {"Domain": ref("CognitoDomainPrefix"), "UserPoolId": ref("UserPool")},
        },
        "ModeratorsGroup": {
            "Type": "AWS::Cognito::UserPoolGroup",
            "Properties": {
                "GroupName": "moderators",
                "Description": "Chatsite moderators (staff in Django admin).",
                "UserPoolId": ref("UserPool"),
            },
        },
    }


# S3 + CloudFront ---------------------------------------------------------------------


# Every bucket: SSE-S3 (S3 ETags stay the MD5 of the body, which the static push compares;
# access logs accept nothing else), no public access, no ACLs.
PRIVATE_BUCKET: Final = {
    "BucketEncryption": {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    },
    "PublicAccessBlockConfiguration": {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    },
    "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
}


def _tls_only(bucket: str) -> dict[str, Any]:
    """A bucket policy statement refusing every request not made over TLS."""
    return {
        "Sid": "TlsOnly",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [getatt(bucket, "Arn"), sub("${" + bucket + ".Arn}/*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


# Shared files (issue 18, uploads/): the browser posts to incoming/ (presigned POST), the app
# moves what it verified to files/ and thumbs/. A message lives 30 days (the seed's TTL), so
# its files do too; an upload never verified is gone after a day (the app's purge deletes
# unattached ones after an hour, and deleted messages' files at once).
UPLOADS_LIFECYCLE: Final = [
    {"Id": "files-live-as-long-as-messages", "Status": "Enabled", "Prefix": "files/", "ExpirationInDays": 31},
    {"Id": "thumbnails-too", "Status": "Enabled", "Prefix": "thumbs/", "ExpirationInDays": 31},
    {"Id": "unverified-uploads", "Status": "Enabled", "Prefix": "incoming/", "ExpirationInDays": 1},
    {"Id": "abort-multipart", "Status": "Enabled", "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
]
# What uploads/store.py calls, on the bucket's keys: a presigned POST is signed with the role's
# PutObject; verification reads (GetObject), copies and writes; HEAD (a file's size) needs
# ListBucket to tell a missing key (404) from a forbidden one (403). Downloads are the uploads
# distribution's (CloudFront signed URLs: an RSA key, no IAM).
APP_S3_OBJECT_ACTIONS: Final = ("s3:DeleteObject", "s3:GetObject", "s3:PutObject")


def uploads_resources() -> dict[str, Any]:
    return {
        "UploadsBucket": {
            "Type": "AWS::S3::Bucket",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                **PRIVATE_BUCKET,
                "LifecycleConfiguration": {"Rules": UPLOADS_LIFECYCLE},
                "CorsConfiguration": {
                    "Fn::If": [
                        "HasUploadOrigins",
                        {
                            "CorsRules": [
                                {
                                    "AllowedOrigins": ref("UploadOrigins"),
                                    "AllowedMethods": ["POST", "GET", "HEAD"],
                                    "AllowedHeaders": ["*"],
                                    "MaxAge": 600,
                                }
                            ]
                        },
                        ref("AWS::NoValue"),
                    ]
                },
                "Tags": _tags("uploads"),
            },
        },
        "UploadsBucketPolicy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": ref("UploadsBucket"),
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        _tls_only("UploadsBucket"),
                        {
                            "Fn::If": [
                                "HasUploadsDistribution",
                                {
                                    # Verified files and thumbnails only: never incoming/.
                                    "Sid": "UploadsDistributionReadsServedFiles",
                                    "Effect": "Allow",
                                    "Principal": {"Service": "cloudfront.amazonaws.com"},
                                    "Action": "s3:GetObject",
                                    "Resource": [
                                        sub("${UploadsBucket.Arn}/files/*"),
                                        sub("${UploadsBucket.Arn}/thumbs/*"),
                                    ],
                                    "Condition": {"StringEquals": {"AWS:SourceArn": UPLOADS_DISTRIBUTION_ARN}},
                                },
                                ref("AWS::NoValue"),
                            ]
                        },
                    ],
                },
            },
        },
        **uploads_distribution_resources(),
    }


# Downloads of shared files: S3 cannot add X-Content-Type-Options to what it serves, so the
# bucket's files/ and thumbs/ are read through their own distribution (another origin than
# the site's: a file never runs as the site), whose response-headers policy adds nosniff and
# the rest of uploads.rules.DOWNLOAD_HEADERS. It serves signed URLs only (the app signs with the
# private half of UploadsPublicKeyPem, after checking the reader) and caches nothing, so a
# deleted message's file is gone from it at once. Type, disposition and Cache-Control are the
# objects' own metadata (uploads/store.py).
UPLOADS_SECURITY_HEADERS: Final = {
    "ContentTypeOptions": {"Override": True},
    "ContentSecurityPolicy": {
        "ContentSecurityPolicy": DOWNLOAD_HEADERS["Content-Security-Policy"],
        "Override": True,
    },
    "ReferrerPolicy": {"ReferrerPolicy": DOWNLOAD_HEADERS["Referrer-Policy"], "Override": True},
    "StrictTransportSecurity": {"AccessControlMaxAgeSec": 31536000, "Override": True},
}
UPLOADS_DISTRIBUTION_ARN: Final = sub(
    "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${UploadsDistribution}"
)


def uploads_distribution_resources() -> dict[str, Any]:
    condition = {"Condition": "HasUploadsDistribution"}
    return {
        "UploadsSigningKey": {
            "Type": "AWS::CloudFront::PublicKey",
            **condition,
            "Properties": {
                "PublicKeyConfig": {
                    "CallerReference": sub("${AWS::StackName}-uploads"),
                    "Name": sub("${AWS::StackName}-uploads"),
                    "Comment": "The app signs shared files' download URLs with its private half.",
                    "EncodedKey": ref("UploadsPublicKeyPem"),
                }
            },
        },
        "UploadsKeyGroup": {
            "Type": "AWS::CloudFront::KeyGroup",
            **condition,
            "Properties": {
                "KeyGroupConfig": {"Name": sub("${AWS::StackName}-uploads"), "Items": [ref("UploadsSigningKey")]}
            },
        },
        "UploadsResponseHeadersPolicy": {
            "Type": "AWS::CloudFront::ResponseHeadersPolicy",
            **condition,
            "Properties": {
                "ResponseHeadersPolicyConfig": {
                    "Name": sub("${AWS::StackName}-uploads"),
                    "Comment": "Shared files: never sniffed, never run (uploads.rules.DOWNLOAD_HEADERS).",
                    "SecurityHeadersConfig": UPLOADS_SECURITY_HEADERS,
                }
            },
        },
        "UploadsOriginAccessControl": {
            "Type": "AWS::CloudFront::OriginAccessControl",
            **condition,
            "Properties": {
                "OriginAccessControlConfig": {
                    "Name": sub("${AWS::StackName}-uploads"),
                    "Description": "CloudFront signs its requests to the private uploads bucket.",
                    "OriginAccessControlOriginType": "s3",
                    "SigningBehavior": "always",
                    "SigningProtocol": "sigv4",
                }
            },
        },
        "UploadsDistribution": {
            "Type": "AWS::CloudFront::Distribution",
            **condition,
            "Properties": {
                "DistributionConfig": {
                    "Comment": sub("${AWS::StackName} shared files (signed URLs only)"),
                    "Enabled": True,
                    "HttpVersion": "http2and3",
                    "IPV6Enabled": True,
                    "PriceClass": ref("PriceClass"),
                    "Origins": [
                        {
                            "Id": "uploads-bucket",
                            "DomainName": getatt("UploadsBucket", "RegionalDomainName"),
                            "OriginAccessControlId": getatt("UploadsOriginAccessControl", "Id"),
                            "S3OriginConfig": {"OriginAccessIdentity": ""},
                        }
                    ],
                    "DefaultCacheBehavior": {
                        "TargetOriginId": "uploads-bucket",
                        "ViewerProtocolPolicy": "https-only",
                        "AllowedMethods": ["GET", "HEAD"],
                        "CachedMethods": ["GET", "HEAD"],
                        "Compress": False,
                        "CachePolicyId": CACHING_DISABLED_POLICY_ID,
                        "ResponseHeadersPolicyId": ref("UploadsResponseHeadersPolicy"),
                        "TrustedKeyGroups": [ref("UploadsKeyGroup")],
                    },
                },
                "Tags": _tags("uploads"),
            },
        },
    }


def static_resources() -> dict[str, Any]:
    distribution_arn = sub("arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${StaticDistribution}")
    return {
        "StaticBucket": {
            "Type": "AWS::S3::Bucket",
            # The build can be pushed again, but its old versions are the rollback: keep them.
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                **PRIVATE_BUCKET,
                # Old versions of overwritten or removed files stay 30 days for a rollback.
                "VersioningConfiguration": {"Status": "Enabled"},
                "LifecycleConfiguration": {
                    "Rules": [
                        {
                            "Id": "expire-old-versions",
                            "Status": "Enabled",
                            "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                        }
                    ]
                },
                "Tags": _tags("static"),
            },
        },
        "StaticBucketPolicy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": ref("StaticBucket"),
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "CloudFrontReadsThroughOriginAccessControl",
                            "Effect": "Allow",
                            "Principal": {"Service": "cloudfront.amazonaws.com"},
                            "Action": "s3:GetObject",
                            "Resource": sub("${StaticBucket.Arn}/*"),
                            "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
                        },
                        _tls_only("StaticBucket"),
                    ],
                },
            },
        },
        "StaticOriginAccessControl": {
            "Type": "AWS::CloudFront::OriginAccessControl",
            "Properties": {
                "OriginAccessControlConfig": {
                    "Name": sub("${AWS::StackName}-static"),
                    "Description": "CloudFront signs its requests to the private static bucket.",
                    "OriginAccessControlOriginType": "s3",
                    "SigningBehavior": "always",
                    "SigningProtocol": "sigv4",
                }
            },
        },
        "StaticCachePolicy": {
            "Type": "AWS::CloudFront::CachePolicy",
            "Properties": {
                "CachePolicyConfig": {
                    "Name": sub("${AWS::StackName}-static"),
                    "Comment": "Follow the Cache-Control the static push sets on every object.",
                    # MinTTL 0: `no-cache` on index.html and config.json is honoured.
                    "MinTTL": 0,
                    "DefaultTTL": 3600,
                    "MaxTTL": 31536000,
                    "ParametersInCacheKeyAndForwardedToOrigin": {
                        "EnableAcceptEncodingGzip": True,
                        "EnableAcceptEncodingBrotli": True,
                        "HeadersConfig": {"HeaderBehavior": "none"},
                        "CookiesConfig": {"CookieBehavior": "none"},
                        "QueryStringsConfig": {"QueryStringBehavior": "none"},
                    },
                }
            },
        },
        "StaticDistribution": {
            "Type": "AWS::CloudFront::Distribution",
            # StaticCertificateArn is only read when StaticDomainName is set; cfn-lint checks
            # the empty default against the ARN pattern all the same.
            "Metadata": {"cfn-lint": {"config": {"ignore_checks": ["W1030"]}}},
            "Properties": {
                "DistributionConfig": {
                    "Comment": sub("${AWS::StackName} static files and the React app"),
                    "Enabled": True,
                    "HttpVersion": "http2and3",
                    "IPV6Enabled": True,
                    "PriceClass": ref("PriceClass"),
                    "DefaultRootObject": "index.html",
                    "Aliases": {"Fn::If": ["HasStaticDomain", [ref("StaticDomainName")], ref("AWS::NoValue")]},
                    "ViewerCertificate": {
                        "Fn::If": [
                            "HasStaticDomain",
                            {
                                "AcmCertificateArn": ref("StaticCertificateArn"),
                                "SslSupportMethod": "sni-only",
                                "MinimumProtocolVersion": "TLSv1.2_2021",
                            },
                            {"CloudFrontDefaultCertificate": True},
                        ]
                    },
                    "Origins": [
                        {
                            "Id": "static-bucket",
                            "DomainName": getatt("StaticBucket", "RegionalDomainName"),
                            "OriginAccessControlId": getatt("StaticOriginAccessControl", "Id"),
                            # Empty identity: access goes through origin access control, not OAI.
                            "S3OriginConfig": {"OriginAccessIdentity": ""},
                        },
                        {"Fn::If": ["HasAppOrigin", _app_origin(), ref("AWS::NoValue")]},
                    ],
                    "CacheBehaviors": {
                        "Fn::If": [
                            "HasAppOrigin",
                            [_app_behavior(path) for path in APP_PATHS],
                            ref("AWS::NoValue"),
                        ]
                    },
                    "DefaultCacheBehavior": {
                        "TargetOriginId": "static-bucket",
                        "ViewerProtocolPolicy": "redirect-to-https",
                        "AllowedMethods": ["GET", "HEAD", "OPTIONS"],
                        "CachedMethods": ["GET", "HEAD"],
                        "Compress": True,
                        "CachePolicyId": ref("StaticCachePolicy"),
                        "ResponseHeadersPolicyId": SECURITY_HEADERS_POLICY_ID,
                    },
                    # A deep link gets index.html (a private bucket answers 403 for a missing
                    # key, so both). Only without the app origin: error pages are the whole
                    # distribution's, and the API's own 403s and 404s must reach their callers
                    # (the React app routes by #hash, so it needs no fallback there).
                    "CustomErrorResponses": {
                        "Fn::If": [
                            "HasAppOrigin",
                            ref("AWS::NoValue"),
                            [
                                {
                                    "ErrorCode": code,
                                    "ResponseCode": 200,
                                    "ResponsePagePath": "/index.html",
                                    "ErrorCachingMinTTL": 0,
                                }
                                for code in (403, 404)
                            ],
                        ]
                    },
                },
                "Tags": _tags("static"),
            },
        },
    }


def _app_origin() -> dict[str, Any]:
    return {
        "Id": "app",
        "DomainName": ref("AppDomainName"),
        "CustomOriginConfig": {
            "OriginProtocolPolicy": "https-only",
            "HTTPSPort": 443,
            "OriginSSLProtocols": ["TLSv1.2"],
            "OriginReadTimeout": 60,
            "OriginKeepaliveTimeout": 60,
        },
    }


def _app_behavior(path: str) -> dict[str, Any]:
    cached = path == "/static/*"
    return {
        "PathPattern": path,
        "TargetOriginId": "app",
        "ViewerProtocolPolicy": "redirect-to-https" if cached else "https-only",
        "AllowedMethods": ["GET", "HEAD", "OPTIONS"]
        if cached
        else ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"],
        "CachedMethods": ["GET", "HEAD"],
        "Compress": True,
        # Django's static files follow whitenoise's Cache-Control; everything else is never cached.
        "CachePolicyId": ref("StaticCachePolicy") if cached else CACHING_DISABLED_POLICY_ID,
        **({} if cached else {"OriginRequestPolicyId": ALL_VIEWER_EXCEPT_HOST_POLICY_ID}),
    }


# IAM and logs ------------------------------------------------------------------------


def iam_resources() -> dict[str, Any]:
    return {
        "AppLogGroup": {
            "Type": "AWS::Logs::LogGroup",
            # Logs outlive the stack for the 30 days they are kept anyway.
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {"LogGroupName": sub("/chatsite/${AWS::StackName}"), "RetentionInDays": 30},
        },
        "AppRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": "The daphne processes: Chatsite's tables, shared files and log group, nothing else.",
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": ["ec2.amazonaws.com", "ecs-tasks.amazonaws.com"]},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "Policies": [
                    {
                        "PolicyName": "chatsite-app",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Sid": "ChatTables",
                                    "Effect": "Allow",
                                    "Action": list(APP_DYNAMODB_ACTIONS),
                                    "Resource": _table_arns(),
                                },
                                {
                                    "Sid": "SharedFiles",
                                    "Effect": "Allow",
                                    "Action": list(APP_S3_OBJECT_ACTIONS),
                                    "Resource": sub("${UploadsBucket.Arn}/*"),
                                },
                                {
                                    "Sid": "SharedFilesMissingKeys",
                                    "Effect": "Allow",
                                    "Action": ["s3:ListBucket"],
                                    "Resource": getatt("UploadsBucket", "Arn"),
                                },
                                {
                                    "Sid": "AppLogs",
                                    "Effect": "Allow",
                                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                                    "Resource": getatt("AppLogGroup", "Arn"),
                                },
                            ],
                        },
                    }
                ],
                "Tags": _tags("app"),
            },
        },
        "AppInstanceProfile": {
            "Type": "AWS::IAM::InstanceProfile",
            "Properties": {"Roles": [ref("AppRole")]},
        },
        "StaticDeployPolicy": {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {
                "Description": "What `python -m deploy.push_static` needs: this bucket and this distribution.",
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "ListStaticBucket",
                            "Effect": "Allow",
                            "Action": "s3:ListBucket",
                            "Resource": getatt("StaticBucket", "Arn"),
                        },
                        {
                            "Sid": "WriteStaticObjects",
                            "Effect": "Allow",
                            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                            "Resource": sub("${StaticBucket.Arn}/*"),
                        },
                        {
                            "Sid": "InvalidateStaticDistribution",
                            "Effect": "Allow",
                            "Action": ["cloudfront:CreateInvalidation", "cloudfront:GetInvalidation"],
                            "Resource": sub(
                                "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${StaticDistribution}"
                            ),
                        },
                    ],
                },
            },
        },
    }


# Load balancer (a second template) ---------------------------------------------------


def load_balancer_parameters() -> dict[str, Any]:
    return {
        "VpcId": {"Type": "AWS::EC2::VPC::Id", "Description": "The VPC of the daphne instances or tasks."},
        "PublicSubnetIds": {
            "Type": "List<AWS::EC2::Subnet::Id>",
            "Description": "Public subnets in two or more availability zones.",
        },
        "CertificateArn": {
            "Type": "String",
            "AllowedPattern": "^arn:aws[a-zA-Z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$",
            "Description": "ACM certificate (same region) for the HTTPS listener.",
        },
        "TargetType": {
            "Type": "String",
            "Default": "instance",
            "AllowedValues": ["instance", "ip"],
            "Description": "instance for EC2 with systemd, ip for ECS on Fargate.",
        },
        "IdleTimeoutSeconds": {
            "Type": "Number",
            "Default": DEFAULT_IDLE_TIMEOUT_SECONDS,
            "MinValue": 60,
            "MaxValue": 4000,
            "Description": "Closes a connection after this long without data frames; above the 25 s heartbeat.",
        },
        "AlarmTopicArn": {
            "Type": "String",
            "Description": "The AlarmTopicArn output of the main Chatsite stack.",
        },
        **admin_allow_parameter(),
    }


def admin_allow_parameter() -> dict[str, Any]:
    return {
        "AdminAllowCidrs": {
            "Type": "CommaDelimitedList",
            "Default": "",
            "Description": "Optional: up to 4 CIDRs that may reach /metrics, /readyz and /admin through the "
            "load balancer (everyone else gets 403 there).",
        }
    }


# The regional Elastic Load Balancing accounts that write access logs in regions opened
# before August 2022 (newer regions use the logdelivery service principal, granted too).
ELB_LOG_ACCOUNTS: Final = {
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-west-1": "027434742980",
    "us-west-2": "797873946194",
    "eu-west-1": "156460612806",
    "eu-west-2": "652711504416",
    "eu-central-1": "054676820928",
    "ap-southeast-1": "114774131450",
    "ap-southeast-2": "783225319266",
    "ap-northeast-1": "582318560864",
}
# Operator paths kept off the public listener: only ADMIN_CIDRS reach them through it.
OPERATOR_PATHS: Final = ("/metrics*", "/readyz*", "/admin*")


def load_balancer_mappings() -> dict[str, Any]:
    return {"ElbLogAccount": {region: {"Id": account} for region, account in ELB_LOG_ACCOUNTS.items()}}


def load_balancer_conditions() -> dict[str, Any]:
    return {
        "HasElbLogAccount": {"Fn::Or": [{"Fn::Equals": [ref("AWS::Region"), r]} for r in ELB_LOG_ACCOUNTS]},
        "HasAdminAllowList": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", ref("AdminAllowCidrs")]}, ""]}]},
    }


def operator_path_rules() -> dict[str, Any]:
    """/metrics, /readyz and /admin answer 403 on the public listener except from the allow-list."""
    rules: dict[str, Any] = {
        "OperatorPathsDeny": {
            "Type": "AWS::ElasticLoadBalancingV2::ListenerRule",
            "Properties": {
                "ListenerArn": ref("HttpsListener"),
                "Priority": 100,
                "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": list(OPERATOR_PATHS)}}],
                "Actions": [
                    {
                        "Type": "fixed-response",
                        "FixedResponseConfig": {
                            "StatusCode": "403",
                            "ContentType": "text/plain",
                            "MessageBody": "Forbidden",
                        },
                    }
                ],
            },
        }
    }
    for index, path in enumerate(OPERATOR_PATHS, start=1):
        rules[f"OperatorPathAllow{index}"] = {
            "Type": "AWS::ElasticLoadBalancingV2::ListenerRule",
            "Condition": "HasAdminAllowList",
            "Properties": {
                "ListenerArn": ref("HttpsListener"),
                "Priority": index,
                "Conditions": [
                    {"Field": "path-pattern", "PathPatternConfig": {"Values": [path]}},
                    {"Field": "source-ip", "SourceIpConfig": {"Values": ref("AdminAllowCidrs")}},
                ],
                "Actions": [{"Type": "forward", "TargetGroupArn": ref("TargetGroup")}],
            },
        }
    return rules


def access_log_resources() -> dict[str, Any]:
    return {
        "AccessLogBucket": {
            "Type": "AWS::S3::Bucket",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                **PRIVATE_BUCKET,
                "LifecycleConfiguration": {
                    "Rules": [{"Id": "expire-access-logs", "Status": "Enabled", "ExpirationInDays": 90}]
                },
                "Tags": _tags("alb-logs"),
            },
        },
        "AccessLogBucketPolicy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": ref("AccessLogBucket"),
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "LoadBalancerWritesLogs",
                            "Effect": "Allow",
                            "Principal": {
                                "Fn::If": [
                                    "HasElbLogAccount",
                                    {
                                        "AWS": {
                                            "Fn::Sub": [
                                                "arn:${AWS::Partition}:iam::${Account}:root",
                                                {
                                                    "Account": {
                                                        "Fn::FindInMap": ["ElbLogAccount", ref("AWS::Region"), "Id"]
                                                    }
                                                },
                                            ]
                                        }
                                    },
                                    {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
                                ]
                            },
                            "Action": "s3:PutObject",
                            "Resource": sub("${AccessLogBucket.Arn}/alb/AWSLogs/${AWS::AccountId}/*"),
                        },
                        _tls_only("AccessLogBucket"),
                    ],
                },
            },
        },
    }


def load_balancer_resources() -> dict[str, Any]:
    return {
        **access_log_resources(),
        **operator_path_rules(),
        "LoadBalancerSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "Chatsite load balancer: HTTPS and the HTTP redirect from anywhere",
                "VpcId": ref("VpcId"),
                "SecurityGroupIngress": [
                    {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0"},
                    {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIp": "0.0.0.0/0"},
                ],
                "Tags": _tags("alb"),
            },
        },
        "AppSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "Chatsite daphne processes: the app ports from the load balancer only",
                "VpcId": ref("VpcId"),
                "SecurityGroupIngress": [
                    {
                        "IpProtocol": "tcp",
                        "FromPort": APP_PORT,
                        "ToPort": APP_PORT_LAST,
                        "SourceSecurityGroupId": ref("LoadBalancerSecurityGroup"),
                    }
                ],
                "Tags": _tags("app"),
            },
        },
        "LoadBalancer": {
            "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "DependsOn": "AccessLogBucketPolicy",
            "Properties": {
                "Type": "application",
                "Scheme": "internet-facing",
                "Subnets": ref("PublicSubnetIds"),
                "SecurityGroups": [ref("LoadBalancerSecurityGroup")],
                "LoadBalancerAttributes": [
                    {"Key": "idle_timeout.timeout_seconds", "Value": ref("IdleTimeoutSeconds")},
                    {"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true"},
                    # The ALB appends the peer address to X-Forwarded-For: only the last
                    # entry is trustworthy (docs/operations.md, proxy headers).
                    {"Key": "routing.http.xff_header_processing.mode", "Value": "append"},
                    {"Key": "access_logs.s3.enabled", "Value": "true"},
                    {"Key": "access_logs.s3.bucket", "Value": ref("AccessLogBucket")},
                    {"Key": "access_logs.s3.prefix", "Value": "alb"},
                ],
                "Tags": _tags("alb"),
            },
        },
        "TargetGroup": {
            "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
            "Properties": {
                "VpcId": ref("VpcId"),
                "Protocol": "HTTP",
                "Port": APP_PORT,
                "TargetType": ref("TargetType"),
                "HealthCheckProtocol": "HTTP",
                # /healthz answers before host validation and the HTTPS redirect
                # (chatsite/ops/health.py), so the ALB's plain-HTTP probe by IP gets 200; it
                # fails only for a hung or draining process, never for a shared dependency.
                "HealthCheckPath": HEALTH_CHECK_PATH,
                "HealthCheckIntervalSeconds": HEALTH_CHECK_INTERVAL_SECONDS,
                "HealthCheckTimeoutSeconds": 4,
                "HealthyThresholdCount": 2,
                "UnhealthyThresholdCount": UNHEALTHY_THRESHOLD,
                "Matcher": {"HttpCode": "200"},
                "TargetGroupAttributes": [
                    # A drain (release.sh's SIGUSR1, or ECS stopping the task) closes the
                    # sockets with 1001 over 20 s inside this delay; clients resume on another
                    # target. Below systemd's TimeoutStopSec (40).
                    {"Key": "deregistration_delay.timeout_seconds", "Value": str(DEREGISTRATION_DELAY_SECONDS)},
                    # Any process can serve any socket: resume works by seq, not affinity.
                    {"Key": "stickiness.enabled", "Value": "false"},
                ],
                "Tags": _tags("app"),
            },
        },
        "HttpsListener": {
            "Type": "AWS::ElasticLoadBalancingV2::Listener",
            "Properties": {
                "LoadBalancerArn": ref("LoadBalancer"),
                "Protocol": "HTTPS",
                "Port": 443,
                "SslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
                "Certificates": [{"CertificateArn": ref("CertificateArn")}],
                "DefaultActions": [{"Type": "forward", "TargetGroupArn": ref("TargetGroup")}],
            },
        },
        "HttpRedirectListener": {
            "Type": "AWS::ElasticLoadBalancingV2::Listener",
            "Properties": {
                "LoadBalancerArn": ref("LoadBalancer"),
                "Protocol": "HTTP",
                "Port": 80,
                "DefaultActions": [
                    {
                        "Type": "redirect",
                        "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"},
                    }
                ],
            },
        },
        "LoadBalancer5xxAlarm": _alarm(
            "The load balancer answered 5xx itself (no healthy target, or a target failed).",
            topic=ref("AlarmTopicArn"),
            Namespace="AWS/ApplicationELB",
            MetricName="HTTPCode_ELB_5XX_Count",
            Dimensions=[{"Name": "LoadBalancer", "Value": getatt("LoadBalancer", "LoadBalancerFullName")}],
            Statistic="Sum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=10,
        ),
        "UnhealthyTargetsAlarm": _alarm(
            "A daphne target failed /healthz: the process is hung, or draining without being deregistered.",
            topic=ref("AlarmTopicArn"),
            **_target_group_metric("UnHealthyHostCount"),
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=3,
            Threshold=0,
        ),
        # No healthy target is an outage whatever the cause; no data at all means the same
        # (the target group stopped reporting), so silence breaches.
        "NoHealthyTargetAlarm": _alarm(
            "No daphne target is healthy: the load balancer answers 503 to everyone.",
            topic=ref("AlarmTopicArn"),
            **_target_group_metric("HealthyHostCount"),
            Statistic="Minimum",
            Period=60,
            EvaluationPeriods=2,
            Threshold=1,
            ComparisonOperator="LessThanThreshold",
            TreatMissingData="breaching",
        ),
    }


def _target_group_metric(name: str) -> dict[str, Any]:
    return {
        "Namespace": "AWS/ApplicationELB",
        "MetricName": name,
        "Dimensions": [
            {"Name": "LoadBalancer", "Value": getatt("LoadBalancer", "LoadBalancerFullName")},
            {"Name": "TargetGroup", "Value": getatt("TargetGroup", "TargetGroupFullName")},
        ],
    }


def load_balancer_outputs() -> dict[str, Any]:
    return {
        "LoadBalancerDnsName": {
            "Description": "Point the app's DNS name here (DJANGO_ALLOWED_HOSTS)",
            "Value": getatt("LoadBalancer", "DNSName"),
        },
        "TargetGroupArn": {
            "Description": f"Register daphne processes (ports {APP_PORT}-{APP_PORT_LAST}) or the ECS service here",
            "Value": ref("TargetGroup"),
        },
        "AppSecurityGroupId": {
            "Description": "Security group for the daphne instances or tasks",
            "Value": ref("AppSecurityGroup"),
        },
    }


def build_load_balancer_template() -> dict[str, Any]:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Chatsite: an Application Load Balancer in front of daphne (WebSockets, /healthz checks).",
        "Parameters": load_balancer_parameters(),
        "Mappings": load_balancer_mappings(),
        "Conditions": load_balancer_conditions(),
        "Resources": load_balancer_resources(),
        "Outputs": load_balancer_outputs(),
    }


# Monitoring --------------------------------------------------------------------------


def _app_metric(name: str, *dimensions: str) -> list[Any]:
    """A dashboard metric row for one EMF metric, with the Service dimension."""
    return ["${MetricsNamespace}", name, "Service", "${ServiceName}", *dimensions]


def _widget(title: str, metrics: list[list[Any]], *, stat: str = "Sum", x: int, y: int) -> dict[str, Any]:
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": 12,
        "height": 6,
        "properties": {
            "title": title,
            "region": "${AWS::Region}",
            "stat": stat,
            "period": 60,
            "view": "timeSeries",
            "metrics": metrics,
        },
    }


def dashboard_body() -> str:
    tables = [f"${{{table_resource_name(t)}}}" for t in schema.TABLES]
    widgets = [
        # Each process writes its gauge once a minute: the one-minute Sum is the fleet's total.
        _widget("Open sockets (fleet)", [_app_metric("ConnectionsOpen")], stat="Sum", x=0, y=0),
        _widget(
            "Handshakes by outcome",
            [_app_metric("Connections", "Outcome", o) for o in ("accepted", "unauthorized", "failed")],
            x=12,
            y=0,
        ),
        _widget(
            "Messages stored and delivered",
            [_app_metric("MessagesStored"), _app_metric("MessagesDelivered"), _app_metric("Joins")],
            x=0,
            y=6,
        ),
        _widget(
            "Errors by code",
            [
                _app_metric("Errors"),
                _app_metric("Errors", "Code", "storage_unavailable"),
                _app_metric("Errors", "Code", "internal_error"),
                _app_metric("RateLimitHits"),
            ],
            x=12,
            y=6,
        ),
        _widget(
            "Latency (mean, ms)",
            [_app_metric("StoreLatency"), _app_metric("BroadcastLatency")],
            stat="Average",
            x=0,
            y=12,
        ),
        _widget(
            "Resumes and channel-layer drops",
            [
                _app_metric("Resumes", "Outcome", "replayed"),
                _app_metric("Resumes", "Outcome", "reloaded"),
                _app_metric("ChannelLayerDrops"),
            ],
            x=12,
            y=12,
        ),
        _widget(
            "DynamoDB throttling",
            [
                ["AWS/DynamoDB", metric, "TableName", name]
                for name in tables
                for metric in ("ReadThrottleEvents", "WriteThrottleEvents")
            ],
            x=0,
            y=18,
        ),
        # Each process writes its interval's p99 (chatsite/ops/emf.py); the fleet's p99 is at
        # most the worst process's.
        _widget(
            "Latency p99, worst process (ms)",
            [_app_metric("StoreLatencyP99"), _app_metric("BroadcastLatencyP99")],
            stat="Maximum",
            x=12,
            y=18,
        ),
    ]
    return json.dumps({"widgets": widgets}, separators=(",", ":"))


def _metric_query(query_id: str, namespace: Any, name: str, dimensions: dict[str, Any]) -> dict[str, Any]:
    return {
        "Id": query_id,
        "ReturnData": False,
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
            },
            "Period": 60,
            "Stat": "Sum",
        },
    }


def _app_alarm_metric(name: str) -> dict[str, Any]:
    """One of the app's EMF metrics, under its Service dimension alone."""
    return {
        "Namespace": ref("MetricsNamespace"),
        "MetricName": name,
        "Dimensions": [{"Name": "Service", "Value": ref("ServiceName")}],
    }


def _alarm(description: str, *, topic: dict[str, Any] | None = None, **properties: Any) -> dict[str, Any]:
    topic = topic or ref("AlarmTopic")
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [topic],
            "OKActions": [topic],
            **properties,
        },
    }


def monitoring_resources() -> dict[str, Any]:
    service = {"Service": ref("ServiceName")}
    namespace = ref("MetricsNamespace")
    throttle_queries = [
        _metric_query(f"t{i}{j}", "AWS/DynamoDB", metric, {"TableName": ref(table_resource_name(table))})
        for i, table in enumerate(schema.TABLES)
        for j, metric in enumerate(("ReadThrottleEvents", "WriteThrottleEvents"))
    ]
    resources: dict[str, Any] = {
        "AlarmTopic": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": "Chatsite alarms"}},
        "AlarmEmailSubscription": {
            "Type": "AWS::SNS::Subscription",
            "Condition": "HasAlarmEmail",
            "Properties": {"TopicArn": ref("AlarmTopic"), "Protocol": "email", "Endpoint": ref("AlarmEmail")},
        },
        "Dashboard": {
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": {
                "DashboardName": sub("${AWS::StackName}"),
                "DashboardBody": sub(dashboard_body()),
            },
        },
        # Every process writes its metrics every METRICS_EMF_INTERVAL: none at all for five
        # minutes means no process is running (or none can log), so silence breaches.
        "AppSilentAlarm": _alarm(
            "No daphne process has reported metrics for 5 minutes: the app is down or cannot log.",
            **_app_alarm_metric("ConnectionsOpen"),
            Statistic="SampleCount",
            Period=300,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="LessThanThreshold",
            TreatMissingData="breaching",
        ),
        # A blocked or saturated event loop slows every socket of a process without an error.
        "EventLoopLagAlarm": _alarm(
            "A daphne process's event loop ran more than 0.5 s late in 3 of 5 minutes (blocking code or overload).",
            **_app_alarm_metric("EventLoopLag"),
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=5,
            DatapointsToAlarm=3,
            Threshold=0.5,
        ),
        # Calls waiting for a thread (the ORM's thread-sensitive one, boto3's default pool): a
        # sample of 50 or more in 3 of 5 minutes is a queue that does not drain, so every
        # store call of that process waits behind it (a slow database, a blocking call).
        "ThreadPoolQueuedAlarm": _alarm(
            "A daphne process had 50+ calls waiting for a thread in 3 of 5 minutes (a slow store or blocking code).",
            **_app_alarm_metric("ThreadPoolQueued"),
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=5,
            DatapointsToAlarm=3,
            Threshold=50,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        ),
        "ErrorRateAlarm": _alarm(
            "Server errors (storage_unavailable, internal_error) as a percentage of message sends.",
            Metrics=[
                _metric_query("internal", namespace, "Errors", {**service, "Code": "internal_error"}),
                _metric_query("storage", namespace, "Errors", {**service, "Code": "storage_unavailable"}),
                _metric_query("stored", namespace, "MessagesStored", service),
                {
                    "Id": "failed",
                    "ReturnData": False,
                    "Expression": "FILL(internal, 0) + FILL(storage, 0)",
                    "Label": "server errors",
                },
                {
                    "Id": "rate",
                    "ReturnData": True,
                    "Expression": "IF(failed + FILL(stored, 0) > 0, 100 * failed / (failed + FILL(stored, 0)), 0)",
                    "Label": "server error rate (%)",
                },
            ],
            Threshold=ref("ErrorRateThresholdPercent"),
            EvaluationPeriods=5,
            DatapointsToAlarm=3,
        ),
        "FailedConnectionsAlarm": _alarm(
            "WebSocket handshakes that failed server-side (the store refused the connection row).",
            Namespace=namespace,
            MetricName="Connections",
            Dimensions=[{"Name": "Service", "Value": ref("ServiceName")}, {"Name": "Outcome", "Value": "failed"}],
            Statistic="Sum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=ref("FailedConnectionsThreshold"),
        ),
        "ThrottlingAlarm": _alarm(
            "DynamoDB read and write throttle events on Chatsite's tables.",
            Metrics=[
                *throttle_queries,
                {
                    "Id": "throttled",
                    "ReturnData": True,
                    "Expression": " + ".join(f"FILL({q['Id']}, 0)" for q in throttle_queries),
                    "Label": "throttle events",
                    "Period": 300,
                },
            ],
            Threshold=ref("ThrottleThreshold"),
            EvaluationPeriods=1,
        ),
        "ChannelLayerDropsAlarm": _alarm(
            "Room events lost (channel-layer capacity, seqs missing past the reorder window, failed sends); "
            "reordering between processes is counted apart (EventsReordered) and never alarms.",
            Namespace=namespace,
            MetricName="ChannelLayerDrops",
            Dimensions=[{"Name": "Service", "Value": ref("ServiceName")}],
            Statistic="Sum",
            Period=300,
            EvaluationPeriods=2,
            Threshold=100,
        ),
    }
    return resources


# Outputs -----------------------------------------------------------------------------


def outputs() -> dict[str, Any]:
    """Each output names the environment variable it fills (see .env.example)."""
    result: dict[str, Any] = {}
    for table in schema.TABLES:
        result[f"{table.logical_name}TableName"] = {
            "Description": table.setting,
            "Value": ref(table_resource_name(table)),
        }
    result.update(
        {
            "Region": {"Description": "AWS_REGION and COGNITO_REGION", "Value": ref("AWS::Region")},
            "UserPoolId": {"Description": "COGNITO_USER_POOL_ID", "Value": ref("UserPool")},
            "UserPoolClientId": {"Description": "COGNITO_APP_CLIENT_ID", "Value": ref("UserPoolClient")},
            "CognitoDomain": {
                "Condition": "HasCognitoDomain",
                "Description": "COGNITO_DOMAIN",
                "Value": sub("${CognitoDomainPrefix}.auth.${AWS::Region}.amazoncognito.com"),
            },
            "StaticBucketName": {"Description": "push_static --bucket", "Value": ref("StaticBucket")},
            "UploadsBucketName": {"Description": "CHAT_UPLOADS_BUCKET", "Value": ref("UploadsBucket")},
            "UploadsDistributionDomainName": {
                "Condition": "HasUploadsDistribution",
                "Description": "CHAT_UPLOADS_CDN_DOMAIN (the fleet's UploadsCdnDomain)",
                "Value": getatt("UploadsDistribution", "DomainName"),
            },
            "UploadsSigningKeyId": {
                "Condition": "HasUploadsDistribution",
                "Description": "CHAT_UPLOADS_CDN_KEY_ID (the fleet's UploadsCdnKeyId)",
                "Value": ref("UploadsSigningKey"),
            },
            "DistributionId": {"Description": "push_static --distribution-id", "Value": ref("StaticDistribution")},
            "DistributionDomainName": {
                "Description": "CHAT_ALLOWED_ORIGINS (https://...) when the React app is served from here",
                "Value": getatt("StaticDistribution", "DomainName"),
            },
            "AppRoleArn": {
                "Description": "Task role (ECS) for the daphne processes",
                "Value": getatt("AppRole", "Arn"),
            },
            "AppRoleName": {
                "Description": "The task role's name (policies the fleet stack adds)",
                "Value": ref("AppRole"),
            },
            "AppInstanceProfileName": {
                "Description": "Instance profile (EC2) for the daphne processes",
                "Value": ref("AppInstanceProfile"),
            },
            "StaticDeployPolicyArn": {
                "Description": "Attach to whoever runs push_static",
                "Value": ref("StaticDeployPolicy"),
            },
            "AppLogGroupName": {
                "Description": "Log group for the app's JSON and EMF lines",
                "Value": ref("AppLogGroup"),
            },
            "AlarmTopicArn": {"Description": "SNS topic of the alarms", "Value": ref("AlarmTopic")},
        }
    )
    return result


# The main stack's outputs the fleet stack imports (deploy/fleet.py) as <stack>-<output>.
EXPORTED_OUTPUTS: Final = (
    "ConnectionsTableName",
    "MessagesTableName",
    "RoomsTableName",
    "UserPoolId",
    "UserPoolClientId",
    "AppRoleArn",
    "AppRoleName",
    "AppLogGroupName",
    "AlarmTopicArn",
    "UploadsBucketName",
)


def build_template(without_indexes: frozenset[str] = frozenset()) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for part in (
        table_resources(without_indexes),
        cognito_resources(),
        static_resources(),
        uploads_resources(),
        iam_resources(),
        monitoring_resources(),
    ):
        overlap = resources.keys() & part.keys()
        assert not overlap, f"duplicate resources {overlap}"
        resources.update(part)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Chatsite: DynamoDB tables, Cognito, static files on S3 + CloudFront, IAM, monitoring.",
        "Parameters": parameters(),
        "Conditions": conditions(),
        "Resources": resources,
        "Outputs": {
            name: {**output, "Export": {"Name": sub("${AWS::StackName}-" + name)}}
            if name in EXPORTED_OUTPUTS
            else output
            for name, output in outputs().items()
        },
    }


def build_fleet_template() -> dict[str, Any]:
    template = fleet.build_fleet_template(load_balancer_resources())
    template["Parameters"].update(admin_allow_parameter())
    template["Mappings"] = load_balancer_mappings()
    template["Conditions"].update(load_balancer_conditions())
    return template


TEMPLATES: Final = {
    "chatsite.yaml": build_template,
    "load-balancer.yaml": build_load_balancer_template,
    "fleet.yaml": build_fleet_template,
}

HEADER: Final = (
    "# Generated by `python -m deploy.stack` from deploy/stack.py and chat/storage/schema.py.\n"
    "# Do not edit by hand: change the generator and run it again (deploy/README.md).\n"
)


class _Dumper(yaml.SafeDumper):
    """Writes repeated values out in full: CloudFormation rejects YAML anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(template: dict[str, Any]) -> str:
    return HEADER + yaml.dump(template, Dumper=_Dumper, sort_keys=False, width=120, default_flow_style=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (or --check) deploy/cloudformation/*.yaml.")
    parser.add_argument("--check", action="store_true", help="fail if a committed template is stale")
    parser.add_argument("--directory", type=Path, default=TEMPLATE_DIR)
    parser.add_argument(
        "--without-index",
        action="append",
        default=[],
        metavar="NAME",
        help="print the main template without this DynamoDB index (repeatable): the first step of an upgrade "
        "that adds two indexes to one table",
    )
    args = parser.parse_args(argv)
    if args.without_index:
        unknown = set(args.without_index) - index_names()
        if unknown:
            parser.error(f"no such index: {', '.join(sorted(unknown))} (indexes: {', '.join(sorted(index_names()))})")
        sys.stdout.write(render(build_template(frozenset(args.without_index))))
        return 0
    stale = []
    for name, build in TEMPLATES.items():
        path = args.directory / name
        text = render(build())
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print(f"stale: {', '.join(map(str, stale))}; run `python -m deploy.stack`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
