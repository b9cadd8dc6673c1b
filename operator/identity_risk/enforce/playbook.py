"""The whole playbook: every action type the operator carries out, and how to undo it.

Handlers live in their own modules (which import ``actions`` for the shared types), so the
tables are assembled here, above all of them; the executor and ``kubectl risk release`` read
these two dicts. One line per action.
"""

from __future__ import annotations

from identity_risk.domain import ActionType
from identity_risk.enforce import actions
from identity_risk.enforce.actions import Handler, Releaser
from identity_risk.enforce.quarantine import quarantine_pods, release_quarantine
from identity_risk.enforce.recreate import recreate_service_account
from identity_risk.enforce.rotation import rotate_secrets
from identity_risk.enforce.scope import release_scope, restrict_scope
from identity_risk.enforce.ttl import release_token_ttl, shorten_token_ttl

HANDLERS: dict[ActionType, Handler] = {
    **actions.HANDLERS,
    ActionType.QUARANTINE_PODS: quarantine_pods,
    ActionType.RESTRICT_SCOPE: restrict_scope,
    ActionType.SHORTEN_TOKEN_TTL: shorten_token_ttl,
    ActionType.ROTATE_SECRETS: rotate_secrets,
    ActionType.RECREATE_SERVICE_ACCOUNT: recreate_service_account,
}
"""Action type → handler. An action type without a handler is recorded as Skipped."""

RELEASERS: dict[ActionType, Releaser] = {
    **actions.RELEASERS,
    ActionType.QUARANTINE_PODS: release_quarantine,
    ActionType.RESTRICT_SCOPE: release_scope,
    ActionType.SHORTEN_TOKEN_TTL: release_token_ttl,
}
"""Action type → what undoes it (reversible actions only), from its recorded outcome."""
