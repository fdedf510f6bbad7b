"""Tuning: what the operator learns from the starts it watches. Pure, but for ``prober``.

``phases`` splits one pod's start into phases; ``coldstarts`` counts the starts and keeps the
recent ones (``status.coldStarts``); ``misses`` judges each window's start (``status.misses``);
``lead`` learns how early to pre-warm from the recent starts (``status.leadTime``). ``prober``
asks a server pod that just turned Ready for its own phases over HTTP, the one call to a pod.
"""
