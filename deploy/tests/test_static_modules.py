"""The template page's ES modules after the Dockerfile's collectstatic: each deploy's scripts load only each other."""

from __future__ import annotations

import json
import re
from pathlib import Path

IMPORT = re.compile(r"""(?:import|export)\s[^;]*?\sfrom\s+["']([^"']+)["']""")


def test_module_imports_name_hashed_files(collected_static: Path) -> None:
    """chat.js and the protocol client import each other by hashed name, and every imported file exists."""
    manifest = json.loads((collected_static / "staticfiles.json").read_text())["paths"]
    checked = 0
    for name in ("chat/chat.js", "chat/signout.js", "chat/core/client.js"):
        hashed = collected_static / manifest[name]
        imports = IMPORT.findall(hashed.read_text())
        assert imports, f"{name} imports nothing?"
        for target in imports:
            resolved = (hashed.parent / target).resolve().relative_to(collected_static.resolve()).as_posix()
            assert resolved in manifest.values(), f"{manifest[name]} imports {target}, not a hashed file"
            assert (collected_static / resolved).exists()
            checked += 1
    assert checked >= 4
