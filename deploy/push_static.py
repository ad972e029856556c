"""Push the React build to S3 and invalidate its entry files in CloudFront.

    python -m deploy.push_static --bucket BUCKET --distribution-id ID [--dry-run]

The React build (frontend/dist) goes to the root of the bucket, where CloudFront's default
root object index.html is. Django's own static files do not go to S3: the distribution
sends /static/* to the load balancer, where whitenoise serves them with long cache headers
(deploy/stack.py), so the pages and their files always come from the same release.

Every object gets its Content-Type from an explicit table and one of three Cache-Control
values: content-hashed files (Vite's assets/) are immutable for a year; index.html and
config.json are `no-cache` (revalidated on every load, so a deploy shows at once);
anything else is cached for five minutes.

Releases: each push records the build's keys in releases/<time>-<digest>.json, and an
asset is deleted only once none of the last KEEP_RELEASES releases has it. A tab still
running the previous build (or the one before) keeps loading its lazy chunks after a
deploy instead of failing on a deleted file.

The push is idempotent: a file whose MD5 equals the object's ETag is not uploaded again, so
a second run uploads nothing and invalidates nothing. Order matters for clients loading
the app during a push: new assets first, then the entry files that point at them, then the
release record, then deletion of what no kept release has, then one CloudFront
invalidation of the entry files only: hashed assets never change under their name, and
the other files expire within five minutes.

See deploy/README.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent

IMMUTABLE: Final = "public, max-age=31536000, immutable"
NO_CACHE: Final = "no-cache"
SHORT: Final = "public, max-age=300"
# Files a browser fetches by a fixed name to find everything else.
ENTRY_NAMES: Final = frozenset({"index.html", "config.json"})
# Pre-compressed copies: CloudFront compresses by itself, and an object named .gz would be
# served as gzip bytes.
SKIP_NAMES: Final = frozenset({"staticfiles.json"})
SKIP_SUFFIXES: Final = (".gz", ".br")
# The current release and the two before it keep their assets in the bucket.
KEEP_RELEASES: Final = 3
RELEASES_PREFIX: Final = "releases/"
# Above this many changed paths, one wildcard invalidation is cheaper (each path is billed
# past the first thousand a month) and CloudFront allows 3,000 paths in progress.
MAX_INVALIDATION_PATHS: Final = 100

_TEXT: Final = "; charset=utf-8"
CONTENT_TYPES: Final = {
    ".html": "text/html" + _TEXT,
    ".htm": "text/html" + _TEXT,
    ".css": "text/css" + _TEXT,
    ".js": "text/javascript" + _TEXT,
    ".mjs": "text/javascript" + _TEXT,
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain" + _TEXT,
    ".md": "text/markdown" + _TEXT,
    ".csv": "text/csv" + _TEXT,
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/vnd.microsoft.icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".eot": "application/vnd.ms-fontobject",
    ".wasm": "application/wasm",
    ".pdf": "application/pdf",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
}
DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(Path(name).suffix.lower(), DEFAULT_CONTENT_TYPE)


@dataclass(frozen=True, slots=True)
class LocalFile:
    key: str
    path: Path
    md5: str
    content_type: str
    cache_control: str

    @property
    def entry(self) -> bool:
        return self.cache_control == NO_CACHE


@dataclass(frozen=True, slots=True)
class Source:
    """A directory pushed under a key prefix; `hashed` says which of its files are content-hashed."""

    name: str
    directory: Path
    prefix: str
    hashed: Callable[[str], bool]


@dataclass
class Plan:
    upload: list[LocalFile] = field(default_factory=list)  # not in the bucket yet
    update: list[LocalFile] = field(default_factory=list)  # in the bucket with other content
    delete: list[str] = field(default_factory=list)  # in the bucket, in no kept release
    unchanged: int = 0
    skipped_sources: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # every key of this build
    record: tuple[str, bytes] | None = None  # this release's record, when it is new

    @property
    def empty(self) -> bool:
        return not (self.upload or self.update or self.delete or self.record)

    def invalidation_paths(self) -> list[str]:
        """CloudFront paths whose cached copy is stale: the entry files that changed.

        Hashed assets never change under their name; a deleted one was not in the current
        build, and the other files expire within five minutes."""
        keys = sorted({f.key for f in self.update if f.entry})
        paths = {"/" + urllib.parse.quote(key) for key in keys}
        # The default root object is also cached under "/".
        if any(key == "index.html" for key in keys):
            paths.add("/")
        if len(paths) > MAX_INVALIDATION_PATHS:
            return ["/*"]
        return sorted(paths)


# Reading the build ---------------------------------------------------------------------


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def app_source(directory: Path, prefix: str = "") -> Source:
    # Vite writes every bundled asset as assets/<name>-<hash>.<ext>; public/ files keep
    # their names and are not hashed.
    return Source(
        name="React build", directory=directory, prefix=prefix, hashed=lambda relative: relative.startswith("assets/")
    )


def cache_control(relative: str, source: Source) -> str:
    if Path(relative).name in ENTRY_NAMES:
        return NO_CACHE
    if source.hashed(relative):
        return IMMUTABLE
    return SHORT


def collect(source: Source) -> dict[str, LocalFile]:
    files: dict[str, LocalFile] = {}
    for path in sorted(source.directory.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(source.directory).as_posix()
        if path.name in SKIP_NAMES:
            continue
        if path.suffix in SKIP_SUFFIXES and path.with_suffix("").exists():
            continue
        key = source.prefix + relative
        files[key] = LocalFile(
            key=key,
            path=path,
            md5=md5_of(path),
            content_type=content_type(path.name),
            cache_control=cache_control(relative, source),
        )
    return files


# Comparing with the bucket ---------------------------------------------------------------


def list_bucket(s3: Any, bucket: str) -> dict[str, str]:
    """Every key in the bucket with its ETag (quotes removed)."""
    objects: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            objects[item["Key"]] = item["ETag"].strip('"')
    return objects


def _owner(key: str, prefixes: Sequence[str]) -> str | None:
    """The source prefix a bucket key belongs to: the longest that matches."""
    matching = [p for p in prefixes if key.startswith(p)]
    return max(matching, key=len) if matching else None


def make_plan(
    sources: Sequence[Source],
    remote: dict[str, str],
    *,
    delete: bool = True,
    force: bool = False,
    keep: frozenset[str] = frozenset(),
) -> Plan:
    """What to upload and delete; `keep` are keys that older kept releases still use."""
    plan = Plan()
    local: dict[str, LocalFile] = {}
    present_prefixes: list[str] = []
    for source in sources:
        if not source.directory.is_dir():
            plan.skipped_sources.append(f"{source.name}: {source.directory} does not exist")
            continue
        present_prefixes.append(source.prefix)
        local.update(collect(source))
    all_prefixes = [s.prefix for s in sources]
    plan.keys = sorted(local)
    for key, item in sorted(local.items()):
        etag = remote.get(key)
        if etag is None:
            plan.upload.append(item)
        elif force or etag != item.md5:
            # A multipart ETag ("...-N") is never an MD5: such an object is uploaded again.
            plan.update.append(item)
        else:
            plan.unchanged += 1
    if delete:
        for key in sorted(remote):
            if key in local or key in keep or key.startswith(RELEASES_PREFIX):
                continue
            # Only keys of a source that was pushed: a missing React build leaves the app's
            # files in the bucket alone.
            if _owner(key, all_prefixes) in present_prefixes:
                plan.delete.append(key)
    return plan


# Releases ----------------------------------------------------------------------------------


def release_record(keys: Sequence[str], *, now: float) -> tuple[str, bytes]:
    """This build's release record: its key (time, then a digest of the build's keys) and body."""
    body = json.dumps(sorted(keys), indent=0).encode()
    digest = hashlib.sha256(body).hexdigest()[:16]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return f"{RELEASES_PREFIX}{stamp}-{digest}.json", body


def plan_releases(plan: Plan, records: dict[str, list[str]], *, now: float, delete: bool) -> frozenset[str]:
    """Record this build as a release (unless the newest record is this build already) and
    return the keys the last KEEP_RELEASES releases use; older records go on plan.delete."""
    key, body = release_record(plan.keys, now=now)
    digest = key.rsplit("-", 1)[1]
    ordered = sorted(records)  # the names start with the time: oldest first
    if ordered and ordered[-1].endswith("-" + digest):
        current = ordered[-1]
    else:
        plan.record, current = (key, body), key
        ordered.append(key)
        records = {**records, key: list(plan.keys)}
    kept = ordered[-KEEP_RELEASES:]
    if delete:
        plan.delete += [old for old in ordered if old not in kept and old != current]
    return frozenset(k for record in kept for k in records[record]) | frozenset(kept)


def read_records(s3: Any, bucket: str, remote: dict[str, str]) -> dict[str, list[str]]:
    records: dict[str, list[str]] = {}
    for key in sorted(k for k in remote if k.startswith(RELEASES_PREFIX)):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        records[key] = [str(k) for k in json.loads(body)]
    return records


# Applying the plan -----------------------------------------------------------------------


def _upload(s3: Any, bucket: str, item: LocalFile) -> None:
    body = item.path.read_bytes()
    s3.put_object(
        Bucket=bucket,
        Key=item.key,
        Body=body,
        ContentType=item.content_type,
        CacheControl=item.cache_control,
        ContentMD5=base64.b64encode(bytes.fromhex(item.md5)).decode(),
    )


def _upload_all(s3: Any, bucket: str, items: Iterable[LocalFile], workers: int) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # list() re-raises the first failure.
        list(pool.map(lambda item: _upload(s3, bucket, item), items))


def apply_plan(s3: Any, bucket: str, plan: Plan, *, workers: int = 8) -> None:
    changed = plan.upload + plan.update
    # Assets before the entry files that reference them: a browser loading index.html in the
    # middle of a push never asks for an asset that is not there yet.
    _upload_all(s3, bucket, [f for f in changed if not f.entry], workers)
    _upload_all(s3, bucket, [f for f in changed if f.entry], workers)
    if plan.record is not None:
        key, body = plan.record
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", CacheControl=NO_CACHE)
    for start in range(0, len(plan.delete), 1000):
        batch = plan.delete[start : start + 1000]
        response = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})
        errors = response.get("Errors", [])
        if errors:
            raise RuntimeError(f"could not delete {len(errors)} objects, first: {errors[0]}")


def invalidate(cloudfront: Any, distribution_id: str, paths: list[str]) -> str:
    response = cloudfront.create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={
            "Paths": {"Quantity": len(paths), "Items": paths},
            "CallerReference": f"chatsite-push-{time.time_ns()}",
        },
    )
    return str(response["Invalidation"]["Id"])


def wait_for_invalidation(
    cloudfront: Any, distribution_id: str, invalidation_id: str, *, timeout: float, poll: float = 5.0
) -> bool:
    """Poll until the invalidation completes. Not boto3's waiter: its "Completed" comparison
    is case-sensitive, and stand-ins such as moto answer "COMPLETED"."""
    deadline = time.monotonic() + timeout
    while True:
        status = cloudfront.get_invalidation(DistributionId=distribution_id, Id=invalidation_id)["Invalidation"][
            "Status"
        ]
        if str(status).lower() == "completed":
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


# Command line ------------------------------------------------------------------------------


def describe(plan: Plan, invalidation: list[str], *, distribution_id: str | None) -> list[str]:
    lines = [f"skip     {reason}" for reason in plan.skipped_sources]
    for verb, items in (("upload", plan.upload), ("update", plan.update)):
        lines += [f"{verb}   {f.key}  [{f.content_type}; {f.cache_control}]" for f in items]
    if plan.record is not None:
        lines.append(f"record   {plan.record[0]}")
    lines += [f"delete   {key}" for key in plan.delete]
    if invalidation and distribution_id:
        lines += [f"invalidate {path}" for path in invalidation]
    lines.append(
        f"{len(plan.upload)} to upload, {len(plan.update)} to update, {len(plan.delete)} to delete, "
        f"{plan.unchanged} unchanged"
    )
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.push_static", description="Push static files and the React build to S3 + CloudFront."
    )
    parser.add_argument("--bucket", default=os.environ.get("STATIC_BUCKET"), help="S3 bucket (env STATIC_BUCKET)")
    parser.add_argument(
        "--distribution-id",
        default=os.environ.get("STATIC_DISTRIBUTION_ID"),
        help="CloudFront distribution to invalidate (env STATIC_DISTRIBUTION_ID); none: no invalidation",
    )
    parser.add_argument("--app-dir", type=Path, default=ROOT / "frontend" / "dist", help="the React build")
    parser.add_argument("--app-prefix", default="", help="key prefix of the React build (default: bucket root)")
    parser.add_argument("--app-config", type=Path, help="a config.json for this deployment, pushed over the build's")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument("--no-delete", action="store_true", help="keep objects of releases older than the last three")
    parser.add_argument("--force", action="store_true", help="upload every file even when unchanged")
    parser.add_argument("--wait", action="store_true", help="wait for the invalidation to complete")
    parser.add_argument("--wait-timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    if not args.bucket:
        parser.error("--bucket (or STATIC_BUCKET) is required")
    value = args.app_prefix.lstrip("/")
    args.app_prefix = value if not value or value.endswith("/") else value + "/"
    return args


def _with_app_config(source: Source, config: Path, staging: Path) -> Source:
    """The React build with config.json replaced by the deployment's own (in a copy)."""
    shutil.copytree(source.directory, staging, dirs_exist_ok=True)
    shutil.copyfile(config, staging / "config.json")
    return Source(name=source.name, directory=staging, prefix=source.prefix, hashed=source.hashed)


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chatsite-push-") as staging:
        return _push(args, Path(staging), out)


def _push(args: argparse.Namespace, staging: Path, out: Callable[[str], None]) -> int:
    import boto3

    app = app_source(args.app_dir, args.app_prefix)
    if args.app_config is not None:
        json.loads(args.app_config.read_text())  # refuse to push a config.json that is not JSON
        if app.directory.is_dir():
            app = _with_app_config(app, args.app_config, staging / "app")
        else:
            out(f"--app-config ignored: no React build at {args.app_dir}")
    if not app.directory.is_dir():
        out(f"nothing to push: no React build at {args.app_dir} (run: cd frontend && npm ci && npm run build)")
        return 1

    session = boto3.session.Session()
    s3 = session.client("s3")
    remote = list_bucket(s3, args.bucket)
    # First the build's keys, then what the kept releases still use, then the real plan.
    first = make_plan([app], remote, delete=False)
    plan = Plan(keys=first.keys)
    keep = plan_releases(plan, read_records(s3, args.bucket, remote), now=time.time(), delete=not args.no_delete)
    planned = make_plan([app], remote, delete=not args.no_delete, force=args.force, keep=keep)
    plan = Plan(
        upload=planned.upload,
        update=planned.update,
        delete=planned.delete + plan.delete,
        unchanged=planned.unchanged,
        keys=planned.keys,
        record=plan.record,
    )
    paths = plan.invalidation_paths()
    prefix = "[dry run] " if args.dry_run else ""
    for line in describe(plan, paths, distribution_id=args.distribution_id):
        out(prefix + line)
    if args.dry_run or plan.empty:
        if plan.empty and not args.dry_run:
            out("nothing to do: the bucket matches the build")
        return 0

    apply_plan(s3, args.bucket, plan)
    if args.distribution_id and paths:
        cloudfront = session.client("cloudfront")
        invalidation_id = invalidate(cloudfront, args.distribution_id, paths)
        out(f"invalidation {invalidation_id} created for {len(paths)} path(s)")
        if args.wait:
            done = wait_for_invalidation(cloudfront, args.distribution_id, invalidation_id, timeout=args.wait_timeout)
            out("invalidation completed" if done else "invalidation still in progress after the timeout")
            if not done:
                return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
