"""``kubectl risk verify``: proof that no decision was removed, reordered or edited after the fact.

The operator chains every decision (see :mod:`identity_risk.record.chain`) in two places: its
append-only log file and the ``status.chain`` of each RiskDecision. This command rebuilds the chain
from either — the log with ``--log FILE``, the cluster's RiskDecisions otherwise — and checks every
hash and signature against the operator's public key. A break is reported by link index *and*
decision, because the person reading it has to go and look at that one record.

The key is the only thing trusted: pass the public key (``--public-key``) when you must not trust
the cluster either; otherwise it is derived from the operator's signing-key Secret.
"""

from __future__ import annotations

import argparse
import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from identity_risk.api import v1alpha1 as v1
from identity_risk.cli.cluster import api_errors, connect
from identity_risk.cli.inputs import InputError
from identity_risk.record.chain import Link, Signer, Verification, key_id, load_public_key, verify
from identity_risk.record.decisions import chain_payload, release_payload
from identity_risk.record.log import DECISION_ID, read_links

if TYPE_CHECKING:
    from identity_risk.kube import Kube

DEFAULT_KEY_SECRET = "identity-risk/identity-risk-signing-key"
EXIT_INTACT = 0
EXIT_BROKEN = 1


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "verify",
        help="check the signed decision chain (log file or cluster) for tampering",
        description="Check that the chain of decisions is complete, in order and unedited: every "
        "link's hash, its predecessor's hash and its Ed25519 signature. Reads the operator's "
        "decision log with --log, otherwise the RiskDecisions in the cluster.",
    )
    p.add_argument("--log", type=Path, metavar="FILE",
                   help="the operator's decision log (JSON lines); default: the cluster's RiskDecisions")  # fmt: skip
    key = p.add_mutually_exclusive_group()
    key.add_argument("--key-secret", default=DEFAULT_KEY_SECRET, metavar="NAMESPACE/NAME",
                     help=f"Secret holding the operator's signing key (default: {DEFAULT_KEY_SECRET})")  # fmt: skip
    key.add_argument("--public-key", type=Path, metavar="PEMFILE",
                     help="the operator's Ed25519 public key as PEM; no Secret is read")  # fmt: skip
    p.add_argument("--kubeconfig", help="default: $KUBECONFIG or ~/.kube/config")
    p.set_defaults(run=run)


# --- the chain as read ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Chain:
    """Links in chain order, plus what could not be read as a link."""

    links: list[Link] = field(default_factory=list)
    unreadable: str = ""
    """Why the entry after the last link could not be read (``""``: everything was read)."""
    unchained: list[str] = field(default_factory=list)
    """Decisions (``ns/name``) the operator has not chained yet; not failures."""
    torn_bytes: int = 0
    """Bytes of an incomplete last line (a write cut short by a crash); not counted."""


def decision_of(link: Link) -> str:
    """The ``namespace/name`` of the RiskDecision a link records."""
    decision = link.payload.get(DECISION_ID)
    return decision if isinstance(decision, str) else "unknown decision"


def report(chain: Chain, result: Verification, *, key: str) -> tuple[int, str]:
    """The exit code and the message for a verified chain."""
    if not result.ok and result.broken_at is not None:
        position = result.broken_at
        where = decision_of(chain.links[position])
        code, text = EXIT_BROKEN, f"chain BROKEN at link {position} ({where}): {result.problem}"
        if chain.unchained and "missing" in result.problem:
            text += (
                f"\n  note: {len(chain.unchained)} decision(s) are not chained yet; if the operator"
                " is still recording them, run verify again in a minute"
            )
        return code, text
    if chain.unreadable:
        position = len(chain.links)
        return (
            EXIT_BROKEN,
            f"chain BROKEN at link {position} (unreadable entry): {chain.unreadable}",
        )
    lines = [f"chain intact: {result.links} links verified (key {key})"]
    if chain.unchained:
        lines.append(
            f"  {len(chain.unchained)} decision(s) not yet chained, skipped: "
            + ", ".join(chain.unchained)
        )
    if chain.torn_bytes:
        lines.append(
            f"  note: the last line is incomplete ({chain.torn_bytes} bytes, a write cut short"
            " by a crash); not counted, the operator drops it when it next starts"
        )
    return EXIT_INTACT, "\n".join(lines)


# --- reading --------------------------------------------------------------------------------


def chain_from_log(path: Path) -> Chain:
    """The links of a decision log file; a line that is not a link ends the readable chain."""
    if not path.exists():
        raise InputError(f"{path}: no such file (--log)")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected the decision log file (--log)")
    links: list[Link] = []
    unreadable = ""
    try:
        for link in read_links(path):
            links.append(link)
    except ValueError as error:  # json.JSONDecodeError is a ValueError too
        unreadable = f"line {len(links) + 1} of {path} is not a chain link ({error})"
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error}") from None
    return Chain(links=links, unreadable=unreadable, torn_bytes=_torn_bytes(path))


def _torn_bytes(path: Path) -> int:
    data = path.read_bytes()
    return len(data) - (data.rfind(b"\n") + 1)


def chain_from_decisions(objects: Sequence[Mapping[str, Any]]) -> Chain:
    """Links rebuilt from RiskDecision objects: payload from the spec, the rest from status.chain."""
    indexed: list[tuple[int, Link]] = []
    unchained: list[str] = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        name = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        raw = (obj.get("status") or {}).get("chain")
        if not raw:
            unchained.append(name)
            continue
        try:
            recorded = v1.ChainLink.model_validate(raw)
        except pydantic.ValidationError:
            raise InputError(f"RiskDecision {name}: status.chain is malformed: {raw!r}") from None
        try:
            payload = chain_payload(v1.RiskDecision.model_validate(obj))
        except pydantic.ValidationError:
            # The spec no longer fits the schema; it cannot hash to the signed value either.
            payload = {DECISION_ID: name, "spec": obj.get("spec")}
        link = Link(
            index=recorded.index,
            previous_hash=recorded.previous_hash,
            hash=recorded.hash,
            signature=recorded.signature,
            key_id=recorded.key_id,
            payload=payload,
        )
        indexed.append((recorded.index, link))
        released = _release_link(obj)
        if released is not None:
            indexed.append((released.index, released))
    indexed.sort(key=lambda pair: pair[0])
    return Chain(links=[link for _, link in indexed], unchained=sorted(unchained))


def _release_link(obj: Mapping[str, Any]) -> Link | None:
    """The link that chained a decision's release (``status.release.chain``), if released."""
    try:
        decision = v1.RiskDecision.model_validate(obj)
    except pydantic.ValidationError:
        return None
    release = decision.status.release if decision.status else None
    if release is None or release.chain is None:
        return None
    return Link(
        index=release.chain.index,
        previous_hash=release.chain.previous_hash,
        hash=release.chain.hash,
        signature=release.chain.signature,
        key_id=release.chain.key_id,
        payload=release_payload(decision, by=release.by, at=release.at),
    )


# --- the key --------------------------------------------------------------------------------


def public_key_from_file(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (a private key PEM is accepted: its public half is used)."""
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (--public-key)") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error}") from None
    try:
        if b"PRIVATE KEY" in pem:
            return Signer.from_pem(pem).public_key
        return load_public_key(pem)
    except (ValueError, TypeError) as error:
        raise InputError(f"{path}: not an Ed25519 public key in PEM: {error}") from None


def public_key_from_secret(kube: Kube, reference: str) -> Ed25519PublicKey:
    """The public half of the operator's signing key, read from its Secret."""
    from identity_risk.cli.operator_main import SIGNING_KEY_FIELD

    namespace, _, name = reference.partition("/")
    if not namespace or not name:
        raise InputError(f"--key-secret {reference!r}: expected NAMESPACE/NAME")
    hint = "; or pass the operator's public key with --public-key FILE"
    with api_errors(f"read the signing-key Secret {reference}"):
        secret = kube.get_secret(namespace, name)
    data = (secret.data or {}) if secret is not None else {}
    encoded = data.get(SIGNING_KEY_FIELD)
    if secret is None or not encoded:
        what = "does not exist" if secret is None else f"has no {SIGNING_KEY_FIELD!r} key"
        raise InputError(f"Secret {reference} {what} (is the operator installed?){hint}")
    try:
        return Signer.from_pem(base64.b64decode(encoded)).public_key
    except (ValueError, TypeError) as error:
        raise InputError(
            f"Secret {reference}: {SIGNING_KEY_FIELD} is not an Ed25519 private key: {error}"
        ) from None


# --- running --------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    kube: Kube | None = None
    if args.public_key is not None:
        public_key = public_key_from_file(args.public_key)
    else:
        kube = connect(kubeconfig=args.kubeconfig)
        public_key = public_key_from_secret(kube, args.key_secret)
    if args.log is not None:
        chain = chain_from_log(args.log)
    else:
        kube = kube or connect(kubeconfig=args.kubeconfig)
        with api_errors("list RiskDecisions"):
            objects = kube.list_custom("RiskDecision")
        chain = chain_from_decisions(objects)
    code, text = report(chain, verify(chain.links, public_key), key=key_id(public_key))
    print(text)
    return code
