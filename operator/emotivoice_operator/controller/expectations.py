"""Read-your-writes: the answers to the operator's own writes, until the watch shows them.

client-go calls this bookkeeping ``ControllerExpectations`` (``pkg/controller/controller_utils.go``).
Why: a pass right after a write sees the watch's copy from before it (the event is on its way);
reconciling that copy would write the same thing again, or undo a scale the pass just made.
So the answer to each write is kept by (service, kind, name) and stands in for the watch's copy
until a watch event of that version or a later one comes (``cache.newer``).

Only the pass of a service touches its entry (the queue runs one pass per service at a time);
the watch's handlers drop entries of deleted objects and services.
"""

from __future__ import annotations

from typing import Any

from emotivoice_operator.controller.cache import compact, newer

Key = tuple[str, str]  # (namespace, service name)


class Expectations:
    def __init__(self) -> None:
        # (namespace, service) -> {(kind, name): the answer to our last write}.
        self._written: dict[Key, dict[tuple[str, str], dict[str, Any]]] = {}

    def newest(
        self, owner: Key, kind: str, name: str, watched: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The newest copy known of one object: the watch's, or the answer to our last write
        while the watch has not shown it yet."""
        written = self._written.get(owner, {})
        mine = written.get((kind, name))
        if mine is None:
            return watched
        if watched is not None and newer(mine, watched) is watched:
            written.pop((kind, name), None)  # the watch has caught up: it alone speaks now
            return watched
        return mine

    def expect(self, owner: Key, answer: dict[str, Any]) -> None:
        """Keeps the answer to a write of ``owner``'s pass until the watch shows it."""
        key = (answer["kind"], answer["metadata"]["name"])
        self._written.setdefault(owner, {})[key] = compact(answer)

    def deletion_observed(self, namespace: str, owner: str, kind: str, name: str) -> None:
        """A watch saw the object deleted: the answer to an earlier write no longer stands."""
        self._written.get((namespace, owner), {}).pop((kind, name), None)

    def forget(self, namespace: str, name: str) -> None:
        """Drops what is kept for a deleted service."""
        self._written.pop((namespace, name), None)
