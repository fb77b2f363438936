"""Exposures: which visitor saw which variant, on which page, under which rule set.

An exposure is recorded only when a page carrying the variant was actually served (a page
served unmodified after a failure exposes nobody), and never for QA overrides. Until the
event pipeline consumes them, they wait in a bounded in-process queue; when it is full the
oldest is dropped and counted, so a stalled consumer can never hold a page or grow memory.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import dataclass

from aiohttp import web

from proxy import metrics

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Exposure:
    id: str
    site: str
    visitor: str
    session: str
    experiment: str
    variant: str
    rules_version: str
    url: str
    time: float
    schema: int = SCHEMA_VERSION


class ExposureLog:
    def __init__(self, capacity: int = 100_000) -> None:
        self._queue: deque[Exposure] = deque(maxlen=capacity)

    def record(self, exposure: Exposure) -> None:
        if len(self._queue) == self._queue.maxlen:
            metrics.EXPOSURES_DROPPED.inc()
        self._queue.append(exposure)
        metrics.EXPOSURES.inc()

    def drain(self) -> list[Exposure]:
        """Everything waiting, oldest first; the pipeline's consumer calls this."""
        drained = list(self._queue)
        self._queue.clear()
        return drained

    def __len__(self) -> int:
        return len(self._queue)


EXPOSURES_KEY = web.AppKey("refract.exposures", ExposureLog)


def new_exposure(
    site: str, visitor: str, session: str, experiment: str, variant: str, version: str, url: str
) -> Exposure:
    return Exposure(
        id=uuid.uuid4().hex,
        site=site,
        visitor=visitor,
        session=session,
        experiment=experiment,
        variant=variant,
        rules_version=version,
        url=url,
        time=time.time(),
    )
