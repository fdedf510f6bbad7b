"""Asking the store what the model is: a full listing with retries when there is no cache to
fall back on, and one short bounded check when there is.

Why two ways. Without a usable cache the pod cannot start anyway, so the listing rides out a
store restart with retries and backoff (retry.py). With a verified cache of the same source the
pod can start at once; the store only says whether the cache is still the model. That question
gets one check bounded by `--remote-check-timeout` (config.DEFAULT_REMOTE_CHECK_TIMEOUT_S) in all:
before, a store that accepted connections and never answered held the pod for 324 s (ten
attempts at boto3's 30 s read timeout) and a refused port for 23 s before the cache was used.

A store that refuses our credentials (a rotated key, an expired token) counts as one that
cannot be asked, the same as an outage: see fetch.py for the rule and why.

The check first tries the quick reader (quick.py: no boto3); only when that cannot answer for
another reason than an unreachable store (a listing of several pages, an error status it leaves
to boto3, such as 403) does it ask boto3, once, in the time left. It runs on a thread of its own
that the caller waits for at most the timeout, so nothing inside it (a DNS lookup, a trickling
answer, building boto3's client on a busy node) can stretch that bound; a check still running
then is abandoned (a daemon thread: the process ends without it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from emotivoice_fetch.config import FetchConfig
from emotivoice_fetch.errors import ExitCode, FetchError
from emotivoice_fetch.manifest import merge_expectations, parse_sha256sum
from emotivoice_fetch.plan import Request, select_objects
from emotivoice_fetch.retry import RetryPolicy, with_retries
from emotivoice_fetch.store import ObjectStore

MANIFEST_LIMIT = 16 * 1024 * 1024

Log = Callable[[str], None]
StoreFactory = Callable[[FetchConfig], ObjectStore]

# One try each: the bound is the point, and the cache is there to start on.
_ONCE = RetryPolicy(attempts=1)


def describe_request(
    store: ObjectStore, config: FetchConfig, retry: RetryPolicy, log: Log
) -> Request:
    """List the prefix and read the manifest, if any, into the set of files and their sums."""
    source = config.source
    listed = with_retries(store.list_objects, f"listing {source.uri}", retry, log)
    manifest = None
    if config.manifest_key:
        key = source.key_for(config.manifest_key)
        where = f"manifest s3://{source.bucket}/{key}"
        raw = with_retries(
            lambda: store.read_small(key, MANIFEST_LIMIT), f"reading {where}", retry, log
        )
        try:
            manifest = parse_sha256sum(raw.decode("utf-8"), where)
        except UnicodeDecodeError:
            raise FetchError(ExitCode.USAGE, f"{where} is not UTF-8 text") from None
        expected = merge_expectations(manifest, config.expected_sha256, where)
    else:
        expected = dict(config.expected_sha256)
    wanted = list(manifest) if manifest is not None else (list(expected) or None)
    exclude = [config.manifest_key] if config.manifest_key else []
    objects = select_objects(listed, wanted, source.uri, exclude)
    return Request(objects, expected)


@dataclass(frozen=True)
class Check:
    """What the bounded check learnt: the store's answer, or why there is none."""

    request: Request | None = None
    store: ObjectStore | None = None  # the boto3 store that answered, to download with
    # Why the store could not be compared: SOURCE_UNREACHABLE (no answer in time, refused,
    # 5xx) or CREDENTIALS (it refused ours). None when `request` is set.
    failure: FetchError | None = None


def bounded_check(config: FetchConfig, store_factory: StoreFactory, log: Log) -> Check:
    """One check of the store, bounded by `config.remote_check_timeout_s` in all."""
    timeout = config.remote_check_timeout_s
    deadline = time.monotonic() + timeout
    box: list[Check | BaseException] = []

    def target() -> None:
        try:
            box.append(_check(config, store_factory, deadline, log))
        except BaseException as exc:  # handed to the caller's thread as it is
            box.append(exc)

    worker = threading.Thread(target=target, name="remote-check", daemon=True)
    worker.start()
    worker.join(timeout)
    if not box:
        where = config.source.endpoint_url or "the default AWS endpoint"
        return Check(
            failure=FetchError(
                ExitCode.SOURCE_UNREACHABLE,
                f"no answer from {where} within {timeout:g} s (--remote-check-timeout)",
            )
        )
    got = box[0]
    if isinstance(got, BaseException):
        raise got
    return got


def _check(config: FetchConfig, store_factory: StoreFactory, deadline: float, log: Log) -> Check:
    from emotivoice_fetch.quick import QuickMiss, QuickS3, QuickUnreachable

    try:
        quick = QuickS3(config.source, config.credentials, timeout_s=_left(deadline))
        return Check(request=describe_request(quick, config, _ONCE, log))
    except QuickUnreachable as exc:
        return Check(failure=FetchError(ExitCode.SOURCE_UNREACHABLE, f"{exc}"))
    except (QuickMiss, FetchError):
        pass  # the store answered, but not in a way the quick path reads: ask boto3, once
    store = store_factory(config)
    try:
        return Check(request=describe_request(store, config, _ONCE, log), store=store)
    except FetchError as exc:
        if exc.code in (ExitCode.SOURCE_UNREACHABLE, ExitCode.CREDENTIALS):
            return Check(store=store, failure=exc)
        raise


def _left(deadline: float) -> float:
    return max(0.05, deadline - time.monotonic())
