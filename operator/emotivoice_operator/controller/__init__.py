"""The controller runtime, hosted in kopf: what turns watch events into reconcile passes.

kopf brings the watches, their indexes, Events, peering and liveness; it cannot map a child's
event to its owner's key, so the rest is built here, each piece named after its counterpart in
controller-runtime and client-go:

- ``handlers``: the kopf glue (startup, the indexes, the events that mark a service due);
- ``selectors``: what is watched (the children's kinds and labels, the server pods);
- ``queue``: the workqueue (``FairQueue``: coalescing, retry back-off, fair across namespaces);
- ``cache``: the informer cache (``Snapshot``: one service as the indexes hold it);
- ``expectations``: read-your-writes (client-go's ``ControllerExpectations``): the answers to the
  operator's own writes until the watch shows them;
- ``timer``: ``RequeueAfter`` (a pass returns its next time edge; one loop brings it back).

The decisions are in ``reconcile`` (the pass never queues); ``cache`` and ``expectations`` are
leaves the pass reads through, and import nothing of the operator.
"""
