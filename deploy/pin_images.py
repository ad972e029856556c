"""Pin deploy/Dockerfile's base images by digest: `python -m deploy.pin_images [--check]`.

The Dockerfile names its base images in `ARG *_IMAGE=<name>:<tag>[@sha256:<digest>]`
lines. This resolves each tag's current digest with `docker buildx imagetools inspect` (the
digest of the multi-arch index, so one pin serves amd64 and arm64 builds alike) and writes
`<name>:<tag>@sha256:<digest>` back. A registry must be reachable, so it runs on a
developer's or CI's machine, never in the tests; the rewriting itself is pure and tested.
--check exits 1 when an image has no digest (for a release pipeline that insists on pins).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

DOCKERFILE: Final = Path(__file__).resolve().parent / "Dockerfile"
IMAGE_ARG: Final = re.compile(
    r"^ARG (?P<arg>[A-Z_]+_IMAGE)=(?P<tag>[^@\s]+)(?:@(?P<digest>sha256:[0-9a-f]{64}))?$", re.M
)


def base_images(dockerfile: str) -> dict[str, tuple[str, str | None]]:
    """ARG name -> (image:tag, digest or None)."""
    return {m["arg"]: (m["tag"], m["digest"]) for m in IMAGE_ARG.finditer(dockerfile)}


def pinned(dockerfile: str, digests: dict[str, str]) -> str:
    """The Dockerfile with each image tag followed by its digest (tag -> sha256:...)."""

    def replace(match: re.Match[str]) -> str:
        digest = digests.get(match["tag"], match["digest"])
        if digest is None:
            return match[0]
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise ValueError(f"not an image digest for {match['tag']}: {digest!r}")
        return f"ARG {match['arg']}={match['tag']}@{digest}"

    return IMAGE_ARG.sub(replace, dockerfile)


def registry_digest(tag: str) -> str:
    """The tag's digest as the registry has it now (docker buildx must be installed)."""
    result = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", tag, "--format", "{{json .Manifest.Digest}}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout.strip().strip('"')


def main(argv: Sequence[str] | None = None, *, resolve: Callable[[str], str] = registry_digest) -> int:
    parser = argparse.ArgumentParser(description="Pin deploy/Dockerfile's base images by digest.")
    parser.add_argument("--check", action="store_true", help="fail if an image has no digest; change nothing")
    parser.add_argument("--dockerfile", type=Path, default=DOCKERFILE)
    args = parser.parse_args(argv)
    text = args.dockerfile.read_text()
    images = base_images(text)
    if args.check:
        unpinned = [tag for tag, digest in images.values() if digest is None]
        for tag in unpinned:
            print(f"not pinned by digest: {tag}")
        return 1 if unpinned else 0
    digests = {tag: resolve(tag) for tag, _ in images.values()}
    args.dockerfile.write_text(pinned(text, digests))
    for tag, digest in digests.items():
        print(f"{tag}@{digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
