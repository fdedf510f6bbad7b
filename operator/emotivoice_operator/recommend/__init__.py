"""``emotivoice-operator recommend``: warm windows proposed from a service's Prometheus history.

Modules, each with one job: ``prometheus`` (HTTP only: ``query_range`` in chunks), ``history``
(series -> per-minute arrays of demand and requests on the pool's local week), ``calendar``
(which dates a window applies on: ``warmPool.dates``, calendars, ``--holiday``), ``estimate``
(replicas needed per slot of the week, holidays found), ``propose`` (slots -> windows), ``floor``
(a schedule's per-minute warm floor, from the operator's own window code), ``score`` (coverage,
cost, backtest), ``report`` (the text and YAML), ``plot`` (matplotlib). All but ``prometheus`` and
``plot`` are pure: arrays and dicts in, arrays and dicts out, no clock read.
"""
