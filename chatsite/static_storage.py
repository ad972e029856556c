"""Static files in production: hashed names, pre-compressed copies, and ES module imports that name hashed files.

The template room page is an ES module (`chat/chat.js`) that imports the protocol client
(`chat/core/client.js`, which imports its siblings). Django's manifest storage leaves
`import ... from "./core/client.js"` alone by default, so a hashed `chat.<hash>.js`, cached
for a year, would load the unhashed `client.js`, which is cached only briefly: after a
deploy a browser could run the new page script on the previous deploy's client. With
module import aggregation on, collectstatic rewrites every `import`/`export ... from` to the
hashed name, so each deploy's scripts load only each other.
"""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """WhiteNoise's compressed manifest storage, with JavaScript module imports rewritten to hashed names."""

    support_js_module_import_aggregation = True
