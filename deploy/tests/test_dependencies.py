"""The whole dependency tree pinned with hashes, and the image's base images named for pinning."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

from deploy import pin_images

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def lock_entries() -> list[tuple[Requirement, list[str]]]:
    """Each requirement of the lock with its hashes."""
    text = LOCK.read_text().replace("\\\n", " ")
    entries = []
    for line in text.splitlines():
        if not line or line.lstrip().startswith("#"):
            continue
        spec, *hashes = re.split(r"\s+--hash=", line.strip())
        entries.append((Requirement(spec.strip()), [h.strip() for h in hashes]))
    return entries


def test_every_runtime_requirement_is_locked_at_its_pinned_version_with_hashes() -> None:
    """requirements.txt's pins are in the lock unchanged; every locked package carries sha256 hashes."""
    entries = lock_entries()
    assert len(entries) > 20  # the whole tree, not only the top level
    for requirement, hashes in entries:
        assert str(requirement.specifier).startswith("=="), requirement
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), requirement.name
    locked: dict[str, set[str]] = {}
    for requirement, _ in entries:
        locked.setdefault(requirement.name.lower(), set()).add(str(requirement.specifier))
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            top = Requirement(line)
            assert str(top.specifier) in locked.get(top.name.lower(), set()), f"{top} is not locked: regenerate"


def test_the_lock_is_what_this_environment_runs() -> None:
    """Every locked package that applies here is installed at the locked version (the tests ran on the lock)."""
    checked = 0
    for requirement, _ in lock_entries():
        if requirement.marker is not None and not Marker(str(requirement.marker)).evaluate():
            continue
        version = str(requirement.specifier).removeprefix("==")
        assert importlib.metadata.version(requirement.name) == version, requirement
        checked += 1
    assert checked > 20


def test_the_image_installs_the_lock_with_hashes_only() -> None:
    """The Dockerfile installs requirements.lock with --require-hashes (and no resolver of its own)."""
    text = DOCKERFILE.read_text()
    assert "COPY requirements.lock /tmp/requirements.lock" in text
    install = next(line for line in text.splitlines() if "pip install" in line)
    assert "--require-hashes" in install and "--no-deps" in install and "-r /tmp/requirements.lock" in install


def test_base_images_are_named_once_and_node_is_an_lts_line() -> None:
    """Every FROM uses an *_IMAGE argument; Node is an even (LTS) major of 22 or later."""
    text = DOCKERFILE.read_text()
    images = pin_images.base_images(text)
    assert set(images) == {"NODE_IMAGE", "PYTHON_IMAGE"}
    for line in text.splitlines():
        if line.startswith("FROM "):
            assert re.match(r"FROM \$\{(NODE|PYTHON)_IMAGE\}( AS \w+)?$", line), line
    major = int(re.match(r"node:(\d+)", images["NODE_IMAGE"][0])[1])  # type: ignore[index]
    assert major >= 22 and major % 2 == 0
    assert images["PYTHON_IMAGE"][0].startswith("python:3.11")


def test_pinning_writes_each_digest_after_its_tag() -> None:
    """The pin rewrite keeps the tag for readers and adds the digest the build uses; bad digests are refused."""
    text = "ARG NODE_IMAGE=node:24-bookworm-slim\nARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:" + "a" * 64
    digest = "sha256:" + "b" * 64
    out = pin_images.pinned(text, {"node:24-bookworm-slim": digest})
    assert out.splitlines()[0] == f"ARG NODE_IMAGE=node:24-bookworm-slim@{digest}"
    assert out.splitlines()[1] == text.splitlines()[1]  # untouched without a new digest
    refreshed = pin_images.pinned(out, {"node:24-bookworm-slim": "sha256:" + "c" * 64})
    assert refreshed.splitlines()[0].endswith("c" * 64)
    with pytest.raises(ValueError, match="not an image digest"):
        pin_images.pinned(text, {"node:24-bookworm-slim": "latest"})


def test_pin_check_reports_unpinned_images(tmp_path: Path) -> None:
    """--check fails, naming each image whose digest is missing, and changes nothing."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("ARG NODE_IMAGE=node:24-bookworm-slim\nFROM ${NODE_IMAGE}\n")
    assert pin_images.main(["--check", "--dockerfile", str(dockerfile)]) == 1
    assert pin_images.main(["--dockerfile", str(dockerfile)], resolve=lambda tag: "sha256:" + "d" * 64) == 0
    assert pin_images.main(["--check", "--dockerfile", str(dockerfile)]) == 0
    assert "node:24-bookworm-slim@sha256:" in dockerfile.read_text()
