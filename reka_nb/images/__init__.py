"""Image inputs: whatever a notebook user calls an image, checked and turned into what is sent.

``inputs`` accepts paths, URLs, bytes, files, PIL images, arrays, figures and uploads;
``codec`` decodes, downscales and re-encodes them with Pillow.
"""

from .inputs import (
    MAX_BYTES,
    MAX_SIDE,
    THUMBNAIL_SIDE,
    PreparedImage,
    prepare_image,
    prepare_images,
    shorten_data_urls,
)

__all__ = [
    "MAX_BYTES",
    "MAX_SIDE",
    "THUMBNAIL_SIDE",
    "PreparedImage",
    "prepare_image",
    "prepare_images",
    "shorten_data_urls",
]
