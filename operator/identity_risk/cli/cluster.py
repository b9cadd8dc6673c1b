"""How ``kubectl risk`` subcommands reach the cluster, and how that going wrong reads.

The subcommands use the operator's one API client wrapper (:mod:`identity_risk.kube`); this
module only turns a missing kubeconfig, an unreachable API server or a refused call into an
``InputError`` that says what failed and what to try. The kubernetes client is imported lazily so
that offline subcommands (``simulate``, ``verify --log --public-key``) start without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from identity_risk.cli.inputs import InputError

if TYPE_CHECKING:
    from identity_risk.kube import Kube


def connect(*, kubeconfig: str | None) -> Kube:
    """The API client wrapper for the given (or default) kubeconfig."""
    from kubernetes.config import ConfigException

    from identity_risk.kube import Kube, load_api_client

    try:
        return Kube(load_api_client(kubeconfig=kubeconfig))
    except (ConfigException, OSError) as error:
        where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
        raise InputError(f"cannot load a kubeconfig from {where}: {error}") from None


@contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Re-raise API failures while doing ``what`` as ``InputError``s a person can act on."""
    from urllib3.exceptions import HTTPError

    from identity_risk.kube import KubeError

    try:
        yield
    except KubeError as error:
        hint = " (check your RBAC permissions)" if error.status in (401, 403) else ""
        raise InputError(f"cannot {what}: {error}{hint}") from None
    except HTTPError as error:
        raise InputError(f"cannot {what}: the API server is unreachable: {error}") from None
