"""Bounded LRU caches of BERT embeddings, keyed by text, with optional persistence.

Every request runs BERT twice upstream (prompt -> style, input -> content). A repeated emotion
prompt is the common case, so its embedding is kept and the BERT call skipped. Prompt
embeddings can be saved beside the model so a new replica starts with the common ones warm;
content embeddings (users' own text) are never written to disk.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILE_FORMAT_VERSION = 1


class LruCache:
    """A thread-safe bounded mapping from text to an embedding, least recently used evicted."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.dirty = False

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def get(self, key: str) -> Any | None:
        """The cached value (now most recent) or None; counts a hit or a miss."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
            return None

    def put(self, key: str, value: Any) -> None:
        if self.capacity == 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
            self.dirty = True

    def get_or_compute(self, key: str, compute: Callable[[str], Any]) -> tuple[Any, bool]:
        """(value, was_hit). `compute` runs outside the cache lock (it is a model call)."""
        value = self.get(key)
        if value is not None:
            return value, True
        value = compute(key)
        self.put(key, value)
        return value, False

    def snapshot(self) -> list[tuple[str, Any]]:
        """Entries from least to most recently used (the order `load` restores)."""
        with self._lock:
            return list(self._items.items())


def model_fingerprint(model_dir: Path, precision: str, device: str) -> str:
    """Identifies the weights and numeric setting the embeddings were computed with.

    Sizes and modification times of every file (cheap: no reading of the weights), plus the
    precision and device type, so a new model or precision never reuses stale embeddings.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        rel = path.relative_to(model_dir).as_posix()
        digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    digest.update(f"precision={precision}\0device={device.split(':')[0]}".encode())
    return digest.hexdigest()


def save(cache: LruCache, path: Path, fingerprint: str) -> int:
    """Write the cache atomically (temp file + rename); returns the number of entries saved."""
    import torch

    entries = cache.snapshot()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    payload = {
        "version": FILE_FORMAT_VERSION,
        "fingerprint": fingerprint,
        "texts": [text for text, _ in entries],
        "embeddings": [value.detach().to("cpu") for _, value in entries],
    }
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    cache.dirty = False
    return len(entries)


def load(cache: LruCache, path: Path, fingerprint: str, device: str) -> int:
    """Fill the cache from a saved file with the same fingerprint; returns the entries loaded.

    A missing, foreign or unreadable file is not an error: the cache simply starts empty.
    """
    import torch

    if not path.is_file():
        return 0
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # a corrupt cache must never stop the server
        log.warning("embedding cache %s unreadable, ignored: %s", path, err)
        return 0
    if (
        not isinstance(payload, dict)
        or payload.get("version") != FILE_FORMAT_VERSION
        or payload.get("fingerprint") != fingerprint
    ):
        log.info("embedding cache %s is for another model or precision, ignored", path)
        return 0
    texts, embeddings = payload.get("texts", []), payload.get("embeddings", [])
    for text, embedding in zip(texts, embeddings, strict=False):
        cache.put(text, embedding)
    cache.dirty = False
    return min(len(texts), len(embeddings), cache.capacity)
