"""The static push against S3 and CloudFront on a moto server process."""

from __future__ import annotations

import json
import shutil
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
def site(aws_env: dict[str, str], tmp_path: Path, collected_static: Path) -> dict[str, Any]:
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
    static_dir = tmp_path / "staticfiles"
    # Django admin's few hundred files add nothing the push's rules do not already meet here.
    shutil.copytree(collected_static, static_dir, ignore=shutil.ignore_patterns("admin"))
    return {
        "s3": s3,
        "cloudfront": cloudfront,
        "bucket": bucket,
        "distribution": distribution,
        "static_dir": static_dir,
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
            "--static-dir",
            str(site["static_dir"]),
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


def test_first_push_uploads_every_file_with_its_type_and_caching(site: dict[str, Any], push: Push) -> None:
    """Every built file lands with the right Content-Type; hashed files are immutable, entry files no-cache."""
    push()
    stored = objects(site)
    manifest = json.loads((site["static_dir"] / "staticfiles.json").read_text())["paths"]
    hashed_css = manifest["chat/chat.css"]
    expected_static = {
        "static/" + p.relative_to(site["static_dir"]).as_posix()
        for p in site["static_dir"].rglob("*")
        if p.is_file() and p.name != "staticfiles.json" and p.suffix not in (".gz", ".br")
    }
    app_keys = {"index.html", "config.json", "assets/index-Bq3xY_9a.js", "assets/index-D4e5F6g7.css", "favicon.svg"}
    assert set(stored) == expected_static | app_keys
    expect = {
        "index.html": ("text/html; charset=utf-8", NO_CACHE),
        "config.json": ("application/json", NO_CACHE),
        "assets/index-Bq3xY_9a.js": ("text/javascript; charset=utf-8", IMMUTABLE),
        "assets/index-D4e5F6g7.css": ("text/css; charset=utf-8", IMMUTABLE),
        "favicon.svg": ("image/svg+xml", SHORT),
        f"static/{hashed_css}": ("text/css; charset=utf-8", IMMUTABLE),
        "static/chat/chat.css": ("text/css; charset=utf-8", SHORT),  # the unhashed copy Django keeps
    }
    for key, (content_type, cache_control) in expect.items():
        stored_object = head(site, key)
        assert (stored_object["ContentType"], stored_object["CacheControl"]) == (content_type, cache_control), key
    body = site["s3"].get_object(Bucket=site["bucket"], Key=f"static/{hashed_css}")["Body"].read()
    assert body == (site["static_dir"] / hashed_css).read_bytes()
    # Nothing was cached before: a first push invalidates nothing.
    assert invalidations(site) == []


def test_a_second_push_uploads_nothing(site: dict[str, Any], push: Push) -> None:
    """Pushing the same build again writes no object and creates no invalidation."""
    push()
    written = versions(site)
    printed = push()
    assert printed[-2:] == [
        "0 to upload, 0 to update, 0 to delete, " + f"{len(objects(site))} unchanged",
        "nothing to do: the bucket matches the build",
    ]
    assert versions(site) == written
    assert invalidations(site) == []


def test_changes_are_uploaded_removals_deleted_and_both_invalidated(site: dict[str, Any], push: Push) -> None:
    """A new build replaces index.html, adds an asset, drops one: only those paths are invalidated."""
    push()
    app = site["app_dir"]
    (app / "assets" / "index-Bq3xY_9a.js").unlink()
    (app / "assets" / "index-N3wH4sh1.js").write_text("console.log('v2');")
    (app / "index.html").write_text('<!doctype html><script type="module" src="./assets/index-N3wH4sh1.js"></script>')
    printed = push("--wait", "--wait-timeout", "10")
    stored = objects(site)
    assert "assets/index-Bq3xY_9a.js" not in stored
    assert head(site, "assets/index-N3wH4sh1.js")["CacheControl"] == IMMUTABLE
    assert (
        site["s3"]
        .get_object(Bucket=site["bucket"], Key="index.html")["Body"]
        .read()
        .endswith(b'N3wH4sh1.js"></script>')
    )
    assert any(line.startswith("1 to upload, 1 to update, 1 to delete") for line in printed)
    # The new asset was never cached; index.html is also cached as the default root object "/".
    assert invalidations(site) == [["/", "/assets/index-Bq3xY_9a.js", "/index.html"]]
    assert printed[-1] == "invalidation completed"


def test_dry_run_prints_the_plan_and_changes_nothing(site: dict[str, Any], push: Push) -> None:
    """--dry-run lists each upload with its type and caching, and writes nothing."""
    printed = push("--dry-run")
    assert versions(site) == 0
    assert "[dry run] upload   index.html  [text/html; charset=utf-8; no-cache]" in printed
    assert printed[-1].startswith("[dry run] ") and "0 unchanged" in printed[-1]
    assert invalidations(site) == []


def test_a_missing_react_build_leaves_the_apps_files_alone(site: dict[str, Any], push: Push, tmp_path: Path) -> None:
    """Without frontend/dist the static files are still pushed and the app in the bucket is untouched."""
    push()
    before = objects(site)
    printed = push(app_dir=tmp_path / "no-such-build")
    assert any(line.startswith("skip     React build") for line in printed)
    after = objects(site)
    assert set(after) == set(before)
    assert "index.html" in after


def test_a_deployment_config_json_replaces_the_builds(site: dict[str, Any], push: Push, tmp_path: Path) -> None:
    """--app-config pushes this deployment's config.json in place of the build's."""
    config = tmp_path / "prod-config.json"
    config.write_text('{"apiBaseUrl": "https://chat.example.com", "webSocketUrl": "wss://chat.example.com/ws/"}')
    push("--app-config", str(config))
    body = site["s3"].get_object(Bucket=site["bucket"], Key="config.json")["Body"].read()
    assert json.loads(body)["webSocketUrl"] == "wss://chat.example.com/ws/"
    assert (site["app_dir"] / "config.json").read_text() == '{"apiBaseUrl": ""}'  # the build is untouched


def test_nothing_to_push_is_an_error(site: dict[str, Any], tmp_path: Path) -> None:
    """With neither collectstatic output nor a React build the command fails and says why."""
    printed: list[str] = []
    argv = ["--bucket", site["bucket"], "--static-dir", str(tmp_path / "a"), "--app-dir", str(tmp_path / "b")]
    assert push_static.main(argv, out=printed.append) == 1
    assert "collectstatic" in printed[-1]


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


def test_many_changes_collapse_into_one_wildcard_invalidation() -> None:
    """Past 100 changed paths the invalidation is a single /*; spaces are URL-encoded."""
    one = LocalFile(key="a b.txt", path=Path("x"), md5="0", content_type="text/plain", cache_control=SHORT)
    assert Plan(update=[one]).invalidation_paths() == ["/a%20b.txt"]
    many = [
        LocalFile(key=f"f{i}.txt", path=Path("x"), md5="0", content_type="text/plain", cache_control=SHORT)
        for i in range(101)
    ]
    assert Plan(update=many).invalidation_paths() == ["/*"]
