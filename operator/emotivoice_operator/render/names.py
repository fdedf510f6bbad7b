"""Names of every child object, label keys and fixed paths: the one place they are spelled.

Child names derive from the EmotiVoiceService's name, which the CRD limits so that the longest
derived name (a CronJob: 52 characters at most) still fits.
"""

from __future__ import annotations

import hashlib

from emotivoice_fetch.config import Source, parse_source_uri
from emotivoice_fetch.errors import FetchError

APP_NAME = "emotivoice"
MANAGER = "emotivoice-operator"
FIELD_MANAGER = MANAGER

MODEL_MOUNT = "/models"
HTTP_PORT_NAME = "http"
# The server reads its pool's name here (emotivoice_server.settings.ENV_POOL: a test keeps the two
# the same) and names it on every answer.
SERVER_POOL_ENV = "EMOTIVOICE_POOL"

# The standard labels every child carries (see labels.py).
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"

COMPONENT_SERVER = "server"
COMPONENT_CACHE = "model-cache"
# The pre-warm component: its CronJobs, their Jobs and pods, its ServiceAccount, Role and
# RoleBinding carry this label value (render/prewarm.py names its container the same).
COMPONENT_PREWARM = "prewarm"
# The warm path (warmpath/): the image pre-pull DaemonSet and its pods, the capacity placeholders.
COMPONENT_PREPULL = "image-prepull"
COMPONENT_PLACEHOLDER = "placeholder"
# The window a placeholder holds room for (a label, so its pods can be told apart by window).
LABEL_WINDOW = "tts.emotivoice.io/window"


def server(name: str) -> str:
    """Deployment, Service and HPA share the resource's own name: it is what users type."""
    return name


def model_cache(name: str) -> str:
    """The one claim of the Shared scope (and of every service made before scopes existed)."""
    return f"{name}-model"


# The volume (and volumeClaimTemplate) name of the cache in the server pods.
CACHE_VOLUME = "model-cache"


def replica_cache(name: str, ordinal: int) -> str:
    """The PerReplica claim of one ordinal, as the StatefulSet controller names it
    (TEMPLATE-STATEFULSET-ORDINAL)."""
    return f"{CACHE_VOLUME}-{server(name)}-{ordinal}"


def replica_cache_ordinal(name: str, claim: str) -> int | None:
    """The ordinal of a PerReplica claim of ``name``, or None for any other claim name."""
    prefix = f"{CACHE_VOLUME}-{server(name)}-"
    rest = claim.removeprefix(prefix)
    if rest == claim or not rest.isdigit() or (rest != "0" and rest.startswith("0")):
        return None
    return int(rest)


# The pre-warm component's object names end in -warm, not -prewarm (the label and container say
# prewarm): they are what running clusters hold, what the chart's admission policy checks
# (endsWith('-warm')) and what users type (kubectl create job --from=cronjob/NAME-warm-WINDOW),
# so they stay as they are.


def prewarm_account(name: str) -> str:
    """The pre-warm jobs' ServiceAccount, and the Role and RoleBinding that go with it."""
    return f"{name}-warm"


def prewarm_cronjob(name: str, window: str) -> str:
    """The pre-warm CronJob of one window."""
    return f"{name}-warm-{window}"


def prepull(name: str) -> str:
    """The image pre-pull DaemonSet: one per service, whichever window it serves."""
    return f"{name}-prepull"


def placeholder(name: str, window: str, index: int) -> str:
    """A capacity placeholder pod of one window (at most 26 + 6 + 20 + 5 characters)."""
    return f"{name}-hold-{window}-{index}"


def model_dir(source_uri: str) -> str:
    """Directory of one model inside the cache volume, keyed by its source.

    Changing ``model.source.uri`` then downloads into a fresh directory instead of mixing two
    models' files; the old one stays until the volume is deleted. The key is the source as the
    fetch step reads it (``emotivoice_fetch.config.parse_source_uri``, the one normalisation):
    ``s3://b/p`` and ``s3://b/p/`` name the same objects, so they share one directory rather
    than download the same model twice. It is spelled without a trailing slash, the form every
    example uses, so the directories of existing services keep their names.
    """
    digest = hashlib.sha256(source_key(source_uri).encode()).hexdigest()[:12]
    return f"{MODEL_MOUNT}/{digest}"


def source_key(source_uri: str) -> str:
    """``s3://BUCKET/PREFIX`` with the prefix normalised as the fetch step does, no trailing /."""
    try:
        bucket, prefix = parse_source_uri(source_uri)
    except FetchError:
        # Not an S3 URI (the CRD's pattern rules that out): key the text as written.
        return source_uri
    return Source(bucket, prefix).uri.rstrip("/")
