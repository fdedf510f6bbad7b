"""``emotivoice-operator preview``'s logic: ``timeline`` (pure: floor, pre-warm runs, DST,
overlaps, cost), ``recorded`` (what status says happened), ``text`` and ``plot`` (matplotlib,
imported only when a plot is asked for)."""
