"""The warm path ahead of a window's replicas: the server image pulled onto the pool's nodes
(pre-pull) and nodes held by low-priority placeholder pods (capacity), each from its own lead.

Pure: ``plan`` times each stage of a window's occurrence, ``pulls`` reads the kubelet's
``Pulled`` Events and learns the image lead, ``nodes`` tells per node and per placeholder what
the pods show. The reconciler (reconcile/warmpath.py) does the I/O.
"""
