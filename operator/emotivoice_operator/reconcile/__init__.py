"""The reconcile pass and what it decides with: what one service's children and status should be.

``reconciler`` runs one pass (controller/ queues and triggers it); ``children`` does the pass's
API I/O on children; ``memory`` reads the status back; ``traffic`` gathers what spec.fallback
needs (and reads the serving pods' request counters where a request can wake the service); ``observe`` and ``status`` say what the
cluster shows; ``report`` posts every Event and metric. ``apply``, ``drift``, ``ownership``,
``claims`` and ``edges`` are the pure rules the pass applies. Not the only code that talks to
the Kubernetes API: the pre-warm job (prewarm_job.py) writes warm requests and ``preview --name``
(cli_preview.py) reads a resource.
"""
