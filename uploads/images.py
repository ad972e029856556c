"""Images through Pillow: check one decodes within the pixel limit, strip its metadata
(EXIF holds the camera's location), and make a thumbnail.

Pillow's decompression-bomb check is on, at CHAT_UPLOAD_MAX_PIXELS: a small file that
claims a huge canvas is refused before it is decoded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

THUMBNAIL_EDGE = 320
_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}


class BadImage(ValueError):
    pass


@dataclass(frozen=True)
class Processed:
    data: bytes  # the image as served: re-encoded without metadata
    width: int
    height: int
    thumbnail: bytes
    thumbnail_type: str


def process(data: bytes, content_type: str, *, max_pixels: int) -> Processed:
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                if probe.width * probe.height > max_pixels:
                    raise BadImage(f"the image is larger than {max_pixels} pixels")
                if _FORMATS.get(content_type) != probe.format:
                    raise BadImage("the image is not what its type says")
                animated = getattr(probe, "is_animated", False)
                probe.load()
                image = ImageOps.exif_transpose(probe)
                width, height = image.size
                if animated:
                    # An animation is served as sent but for its metadata, which is dropped
                    # by re-encoding every frame.
                    served = _encode_animation(probe, content_type)
                else:
                    served = _encode(image, _FORMATS[content_type])
                thumb = image.convert("RGBA") if image.mode in {"P", "LA", "RGBA", "PA"} else image.convert("RGB")
                thumb.thumbnail((THUMBNAIL_EDGE, THUMBNAIL_EDGE))
                if thumb.mode == "RGBA":
                    thumbnail, thumbnail_type = _encode(thumb, "PNG"), "image/png"
                else:
                    thumbnail, thumbnail_type = _encode(thumb, "JPEG"), "image/jpeg"
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(f"the image is larger than {max_pixels} pixels") from None
    except Exception as exc:  # Pillow raises many kinds for a broken file
        raise BadImage("the image cannot be decoded") from exc
    return Processed(served, width, height, thumbnail, thumbnail_type)


def _encode(image: object, fmt: str) -> bytes:
    out = io.BytesIO()
    for key in ("exif", "xmp", "XML:com.adobe.xmp", "comment", "photoshop"):
        image.info.pop(key, None)  # type: ignore[attr-defined]
    params = {"quality": 88} if fmt in {"JPEG", "WEBP"} else {}
    if fmt == "JPEG" and image.mode not in {"RGB", "L"}:  # type: ignore[attr-defined]
        image = image.convert("RGB")  # type: ignore[attr-defined]
    image.save(out, format=fmt, **params)  # type: ignore[attr-defined]  # no exif= : none is written
    return out.getvalue()


def _encode_animation(image: object, content_type: str) -> bytes:
    out = io.BytesIO()
    for key in ("exif", "xmp", "XML:com.adobe.xmp", "comment"):
        image.info.pop(key, None)  # type: ignore[attr-defined]
    image.save(out, format=_FORMATS[content_type], save_all=True)  # type: ignore[attr-defined]
    return out.getvalue()
