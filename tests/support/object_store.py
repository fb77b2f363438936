"""A local S3 stand-in: moto's server mode on a free port, with the environment an AWS
client reads (credentials, endpoint, region) pointing at it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer
from pyarrow import fs

_buckets = itertools.count()


@contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """A running S3 stand-in; yields the environment that reaches it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield {
            "AWS_ACCESS_KEY_ID": "refract-tests",
            "AWS_SECRET_ACCESS_KEY": "refract-tests-secret",
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    finally:
        server.stop()


def new_bucket(environ: dict[str, str]) -> str:
    """A fresh, empty bucket's name (each test its own, on one server)."""
    name = f"refract-{next(_buckets)}"
    store(environ, allow_bucket_creation=True).create_dir(name)
    return name


def store(environ: dict[str, str], allow_bucket_creation: bool = False) -> fs.S3FileSystem:
    """pyarrow's S3 file system on the stand-in, as a reader outside Refract (DuckDB, Spark)
    would open it."""
    return fs.S3FileSystem(
        access_key=environ["AWS_ACCESS_KEY_ID"],
        secret_key=environ["AWS_SECRET_ACCESS_KEY"],
        endpoint_override=environ["AWS_ENDPOINT_URL"],
        region=environ["AWS_DEFAULT_REGION"],
        allow_bucket_creation=allow_bucket_creation,
    )
