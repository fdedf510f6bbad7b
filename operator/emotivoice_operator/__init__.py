"""Kubernetes operator that keeps EmotiVoice text-to-speech deployments warm.

Layers, arrows pointing one way: ``crd`` (the typed view of the CRD) -> ``render`` and
``windows`` (pure) -> ``reconcile`` (kopf handlers, the only code that talks to the API).
"""
