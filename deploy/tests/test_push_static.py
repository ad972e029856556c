"""The static push against S3 and CloudFront on a moto server process."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy import push_static
from deploy.push_static import IMMUTABLE, NO_CACHE, SHORT, LocalFile, Plan

pytestmark = pytest.mark.timeout(120)

Push = Callable[..., list[str]]


def react_build(directory: Path) -> Path:
    """A Vite-shaped build: hashed assets/, entry files, and public/ files."""
    (directory / "assets").mkdir(parents=True)
    (directory / "index.html").write_text(
        '<!doctype html><script type="module" src="./assets/index-Bq3xY_9a.js"></script>'
    )
    (directory / "config.json").write_text('{"apiBaseUrl": ""}')
    (directory / "assets" / "index-Bq3xY_9a.js").write_text("console.log('app');")
    (directory / "assets" / "index-D4e5F6g7.css").write_text("body{margin:0}")
    (directory / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    return directory


@pytest.fixture
def site(aws_env: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """A versioned private bucket, a CloudFront distribution in front of it, and a build to push."""
    s3 = boto3.client("s3")
    bucket = f"chatsite-static-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    cloudfront = boto3.client("cloudfront")
    oac = cloudfront.create_origin_access_control(
        OriginAccessControlConfig={
            "Name": bucket,
            "OriginAccessControlOriginType": "s3",
            "SigningBehavior": "always",
            "SigningProtocol": "sigv4",
        }
    )["OriginAccessControl"]["Id"]
    distribution = cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": bucket,
            "Comment": "chatsite static",
            "Enabled": True,
            "DefaultRootObject": "index.html",
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "static-bucket",
                        "DomainName": f"{bucket}.s3.us-east-1.amazonaws.com",
                        "OriginAccessControlId": oac,
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "static-bucket",
                "ViewerProtocolPolicy": "redirect-to-https",
                "MinTTL": 0,
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                "TrustedSigners": {"Enabled": False, "Quantity": 0},
            },
        }
    )["Distribution"]["Id"]
    return {
        "s3": s3,
        "cloudfront": cloudfront,
        "bucket": bucket,
        "distribution": distribution,
        "app_dir": react_build(tmp_path / "dist"),
    }


@pytest.fixture
def push(site: dict[str, Any]) -> Push:
    """Run the command as a deployer would; return what it printed."""

    def run(*extra: str, app_dir: Path | None = None, expect: int = 0) -> list[str]:
        printed: list[str] = []
        argv = [
            "--bucket",
            site["bucket"],
            "--distribution-id",
            site["distribution"],
            "--app-dir",
            str(app_dir or site["app_dir"]),
            *extra,
        ]
        assert push_static.main(argv, out=printed.append) == expect, printed
        return printed

    return run


def objects(site: dict[str, Any]) -> dict[str, str]:
    """Every key in the bucket with its ETag."""
    pages = site["s3"].get_paginator("list_objects_v2").paginate(Bucket=site["bucket"])
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def head(site: dict[str, Any], key: str) -> dict[str, Any]:
    response: dict[str, Any] = site["s3"].head_object(Bucket=site["bucket"], Key=key)
    return response


def versions(site: dict[str, Any]) -> int:
    """Every PUT makes a version in a versioned bucket: the count shows whether anything was written."""
    response = site["s3"].list_object_versions(Bucket=site["bucket"])
    return len(response.get("Versions", [])) + len(response.get("DeleteMarkers", []))


def invalidations(site: dict[str, Any]) -> list[list[str]]:
    cloudfront = site["cloudfront"]
    listing = cloudfront.list_invalidations(DistributionId=site["distribution"])["InvalidationList"]
    found = []
    for item in listing.get("Items", []):
        batch = cloudfront.get_invalidation(DistributionId=site["distribution"], Id=item["Id"])
        found.append(sorted(batch["Invalidation"]["InvalidationBatch"]["Paths"].get("Items", [])))
    return found


def releases(site: dict[str, Any]) -> list[str]:
    return sorted(k for k in objects(site) if k.startswith(push_static.RELEASES_PREFIX))


def test_first_push_uploads_every_file_with_its_type_and_caching(site: dict[str, Any], push: Push) -> None:
    """Every built file lands with the right Content-Type; hashed files are immutable, entry files no-cache."""
    push()
    stored = objects(site)
    app_keys = {"index.html", "config.json", "assets/index-Bq3xY_9a.js", "assets/index-D4e5F6g7.css", "favicon.svg"}
    (record,) = releases(site)
    assert set(stored) == app_keys | {record}
    assert not any(k.startswith("static/") for k in stored)  # Django's files are whitenoise's, via the ALB
    body = site["s3"].get_object(Bucket=site["bucket"], Key=record)["Body"].read()
    assert sorted(json.loads(body)) == sorted(app_keys)
    expect = {
        "index.html": ("text/html; charset=utf-8", NO_CACHE),
        "config.json": ("application/json", NO_CACHE),
        "assets/index-Bq3xY_9a.js": ("text/javascript; charset=utf-8", IMMUTABLE),
        "assets/index-D4e5F6g7.css": ("text/css; charset=utf-8", IMMUTABLE),
        "favicon.svg": ("image/svg+xml", SHORT),
    }
    for key, (content_type, cache_control) in expect.items():
        stored_object = head(site, key)
        assert (stored_object["ContentType"], stored_object["CacheControl"]) == (content_type, cache_control), key
    # Nothing was cached before: a first push invalidates nothing.
    assert invalidations(site) == []


def test_a_second_push_uploads_nothing(site: dict[str, Any], push: Push) -> None:
    """Pushing the same build again writes no object (no new release record) and creates no invalidation."""
    push()
    written = versions(site)
    printed = push()
    assert printed[-2:] == [
        "0 to upload, 0 to update, 0 to delete, " + f"{len(objects(site)) - 1} unchanged",
        "nothing to do: the bucket matches the build",
    ]
    assert versions(site) == written
    assert invalidations(site) == []


def new_release(app: Path, name: str) -> None:
    """The next build: a new hashed bundle, an index.html that loads it, the old bundle gone."""
    for old in (app / "assets").glob("index-*.js"):
        old.unlink()
    (app / "assets" / f"index-{name}.js").write_text(f"console.log('{name}');")
    (app / "index.html").write_text(f'<!doctype html><script type="module" src="./assets/index-{name}.js"></script>')


def test_a_release_keeps_the_previous_assets_and_invalidates_only_the_entry_files(
    site: dict[str, Any], push: Push
) -> None:
    """A tab on the previous build still loads its bundle; only index.html (and /) leave CloudFront's cache."""
    push()
    new_release(site["app_dir"], "N3wH4sh1")
    printed = push("--wait", "--wait-timeout", "10")
    stored = objects(site)
    assert "assets/index-Bq3xY_9a.js" in stored  # the previous release's bundle stays
    assert head(site, "assets/index-N3wH4sh1.js")["CacheControl"] == IMMUTABLE
    body = site["s3"].get_object(Bucket=site["bucket"], Key="index.html")["Body"].read()
    assert body.endswith(b'N3wH4sh1.js"></script>')
    assert any(line.startswith("1 to upload, 1 to update, 0 to delete") for line in printed)
    assert invalidations(site) == [["/", "/index.html"]]
    assert printed[-1] == "invalidation completed"
    assert len(releases(site)) == 2


def test_assets_go_once_no_release_of_the_last_three_uses_them(site: dict[str, Any], push: Push) -> None:
    """After a fourth release the first one's bundle and record are deleted; the last three's stay."""
    bundles = ["Bq3xY_9a", "Rel2aaaa", "Rel3bbbb", "Rel4cccc"]
    push()
    for name in bundles[1:]:
        time.sleep(1.1)  # release records are named by the second they were made
        new_release(site["app_dir"], name)
        push()
    stored = objects(site)
    assert "assets/index-Bq3xY_9a.js" not in stored
    assert {f"assets/index-{n}.js" for n in bundles[1:]} <= set(stored)
    assert len(releases(site)) == push_static.KEEP_RELEASES
    assert "assets/index-D4e5F6g7.css" in stored  # unchanged across releases: never deleted
    # No invalidation ever named an asset.
    assert all(path in {"/", "/index.html"} for batch in invalidations(site) for path in batch)


def test_dry_run_prints_the_plan_and_changes_nothing(site: dict[str, Any], push: Push) -> None:
    """--dry-run lists each upload with its type and caching, and writes nothing."""
    printed = push("--dry-run")
    assert versions(site) == 0
    assert "[dry run] upload   index.html  [text/html; charset=utf-8; no-cache]" in printed
    assert printed[-1].startswith("[dry run] ") and "0 unchanged" in printed[-1]
    assert invalidations(site) == []


def test_a_deployment_config_json_replaces_the_builds(site: dict[str, Any], push: Push, tmp_path: Path) -> None:
    """--app-config pushes this deployment's config.json in place of the build's."""
    config = tmp_path / "prod-config.json"
    config.write_text('{"apiBaseUrl": "https://chat.example.com", "webSocketUrl": "wss://chat.example.com/ws/"}')
    push("--app-config", str(config))
    body = site["s3"].get_object(Bucket=site["bucket"], Key="config.json")["Body"].read()
    assert json.loads(body)["webSocketUrl"] == "wss://chat.example.com/ws/"
    assert (site["app_dir"] / "config.json").read_text() == '{"apiBaseUrl": ""}'  # the build is untouched


def test_nothing_to_push_is_an_error(site: dict[str, Any], tmp_path: Path) -> None:
    """Without a React build the command fails and says how to make one."""
    printed: list[str] = []
    argv = ["--bucket", site["bucket"], "--app-dir", str(tmp_path / "b")]
    assert push_static.main(argv, out=printed.append) == 1
    assert "npm run build" in printed[-1]


# Pure parts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.mjs", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("index.html", "text/html; charset=utf-8"),
        ("config.json", "application/json"),
        ("app.js.map", "application/json"),
        ("logo.svg", "image/svg+xml"),
        ("font.woff2", "font/woff2"),
        ("site.webmanifest", "application/manifest+json"),
        ("mod.wasm", "application/wasm"),
        ("favicon.ico", "image/vnd.microsoft.icon"),
        ("photo.JPG", "image/jpeg"),
        ("blob.unknownext", "application/octet-stream"),
    ],
)
def test_content_types(name: str, expected: str) -> None:
    """Each file type gets the Content-Type browsers need (module scripts refuse the wrong one)."""
    assert push_static.content_type(name) == expected


def test_only_changed_entry_files_are_invalidated() -> None:
    """Changed hashed or short-lived files are not invalidated; entry files are, URL-encoded."""
    short = LocalFile(key="a b.txt", path=Path("x"), md5="0", content_type="text/plain", cache_control=SHORT)
    entry = LocalFile(key="app/index.html", path=Path("x"), md5="0", content_type="text/html", cache_control=NO_CACHE)
    spaced = LocalFile(key="a b/config.json", path=Path("x"), md5="0", content_type="x", cache_control=NO_CACHE)
    assert Plan(update=[short]).invalidation_paths() == []
    assert Plan(update=[short, entry, spaced]).invalidation_paths() == ["/a%20b/config.json", "/app/index.html"]
