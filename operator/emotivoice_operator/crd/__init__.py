"""The EmotiVoiceService custom resource: its identity, schema and typed spec.

Everything here is read from ``crds/emotivoiceservice.yaml`` so the CRD stays the one source of
truth for names, defaults and field lists.
"""

from emotivoice_operator.crd.schema import (
    CALENDAR_KIND,
    CALENDAR_PLURAL,
    CRD,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    api_version,
)

__all__ = [
    "CALENDAR_KIND",
    "CALENDAR_PLURAL",
    "CRD",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "api_version",
]
