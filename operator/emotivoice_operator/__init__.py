"""Kubernetes operator that keeps EmotiVoice text-to-speech deployments warm.

Layers, arrows pointing one way: ``crd`` (the typed view of the CRD) -> ``windows`` and
``render`` (pure) -> ``tuning`` (pure learning from the starts, but for its pod prober) ->
``desired`` -> ``reconcile`` (one pass: children's I/O, status, Events) -> ``controller`` (the
runtime hosted in kopf: watches, queue, expectations, timer). ``reconcile`` reads through
``controller``'s two leaves, ``cache`` and ``expectations``, which import nothing of the rest.
"""
