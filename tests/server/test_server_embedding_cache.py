"""Embedding LRU: bounded, counts hits and misses, persists only for the same model."""

from __future__ import annotations

import torch

from emotivoice_server import embedding_cache as ec


def test_lru_evicts_least_recently_used():
    cache = ec.LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None
    assert cache.get("a") == 1 and cache.get("c") == 3
    assert (cache.hits, cache.misses) == (3, 1)


def test_get_or_compute_calls_the_model_once_per_text():
    calls = []

    def compute(text):
        calls.append(text)
        return len(text)

    cache = ec.LruCache(8)
    assert cache.get_or_compute("happy", compute) == (5, False)
    assert cache.get_or_compute("happy", compute) == (5, True)
    assert calls == ["happy"]


def test_zero_capacity_caches_nothing():
    cache = ec.LruCache(0)
    cache.put("a", 1)
    assert len(cache) == 0


def test_save_and_load_round_trip(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"123")
    fingerprint = ec.model_fingerprint(model, "fp32", "cpu")
    cache = ec.LruCache(4)
    cache.put("Happy", torch.arange(768, dtype=torch.float32).reshape(1, 768))
    cache.put("", torch.zeros(1, 768))
    path = tmp_path / "cache" / "emb.pt"
    assert ec.save(cache, path, fingerprint) == 2
    assert not cache.dirty
    assert [p.name for p in path.parent.iterdir()] == ["emb.pt"]  # no temp file left

    restored = ec.LruCache(4)
    assert ec.load(restored, path, fingerprint, "cpu") == 2
    assert torch.equal(restored.get("Happy"), cache.get("Happy"))
    assert [k for k, _ in restored.snapshot()] == ["", "Happy"]


def test_load_ignores_another_model_or_precision_or_garbage(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"123")
    cache = ec.LruCache(4)
    cache.put("Happy", torch.ones(1, 768))
    path = tmp_path / "emb.pt"
    ec.save(cache, path, ec.model_fingerprint(model, "fp32", "cpu"))

    assert ec.load(ec.LruCache(4), path, ec.model_fingerprint(model, "fp16", "cpu"), "cpu") == 0
    (model / "weights.bin").write_bytes(b"12345")  # the weights changed
    assert ec.load(ec.LruCache(4), path, ec.model_fingerprint(model, "fp32", "cpu"), "cpu") == 0
    path.write_bytes(b"not a torch file")
    assert ec.load(ec.LruCache(4), path, "x", "cpu") == 0
    assert ec.load(ec.LruCache(4), tmp_path / "absent.pt", "x", "cpu") == 0
