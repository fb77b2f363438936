"""``s3://bucket/prefix`` URLs: where an object store holds something (the Parquet archive,
``events.archive_dir``), checked where the config is parsed and where the archive opens it."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

SCHEMES = ("s3",)
# S3's own rules for a bucket name (3-63 characters, lower case, digits, dots, hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Key prefix components: S3's "safe characters", so every engine reads the keys alike.
_PREFIX_PART = re.compile(r"[A-Za-z0-9!_.*'()=+-]{1,255}")
_MAX_URL = 1024


def is_object_store_url(location: str | Path) -> bool:
    """A URL rather than a path: a ``Path`` never is, a string is when it has a scheme."""
    return isinstance(location, str) and "://" in location


def check_object_store_url(url: str) -> str:
    """``url`` if it names an S3 bucket and an optional key prefix; ValueError with the reason
    otherwise."""
    if len(url) > _MAX_URL:
        raise ValueError(f"an object store URL is at most {_MAX_URL} characters")
    # urlsplit drops tabs and line breaks silently: refuse them before it can
    if any(char < " " or char == "\x7f" for char in url):
        raise ValueError("an object store URL has no control characters")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"{parts.scheme!r} URLs are not supported: give s3://bucket/prefix")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(
            "an s3:// URL has no query, fragment or credentials (credentials and endpoint "
            "come from the environment: AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL...)"
        )
    if not _BUCKET.fullmatch(parts.netloc):
        raise ValueError(f"{parts.netloc!r} is not an S3 bucket name")
    for part in parts.path.split("/"):
        if part and (part in (".", "..") or not _PREFIX_PART.fullmatch(part)):
            raise ValueError(f"{part!r} is not a safe key prefix component")
    return url


def bucket_path(url: str) -> Path:
    """``bucket/prefix`` of a checked URL: the path pyarrow's S3 file system takes."""
    parts = urlsplit(check_object_store_url(url))
    return Path(parts.netloc, *[part for part in parts.path.split("/") if part])
