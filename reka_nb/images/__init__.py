"""Image inputs: whatever a notebook user calls an image, checked and turned into what is sent.

``inputs`` accepts paths, URLs, bytes, files, PIL images, arrays, figures and uploads;
``codec`` decodes, downscales and re-encodes them with Pillow; ``video`` reads MP4, MOV and
WebM clips' container, duration and size (they are sent as they are).
"""

from .inputs import (
    LIGHT_BYTES,
    MAX_BYTES,
    MAX_SIDE,
    READ_AGAIN,
    THUMBNAIL_SIDE,
    Media,
    PreparedImage,
    deferred_thumbnail,
    light,
    prepare_image,
    prepare_images,
    row_thumbnail,
    shorten_data_urls,
    thumbnail_again,
)
from .video import LONG_VIDEO_SECONDS, MAX_VIDEO_BYTES, PreparedVideo, read_video_info

__all__ = [
    "LIGHT_BYTES",
    "LONG_VIDEO_SECONDS",
    "MAX_BYTES",
    "MAX_SIDE",
    "MAX_VIDEO_BYTES",
    "READ_AGAIN",
    "THUMBNAIL_SIDE",
    "Media",
    "PreparedImage",
    "PreparedVideo",
    "deferred_thumbnail",
    "light",
    "prepare_image",
    "prepare_images",
    "read_video_info",
    "row_thumbnail",
    "shorten_data_urls",
    "thumbnail_again",
]
