"""``kubectl risk``: the kubectl plugin people use to question and steer the operator.

Thin by design: argument parsing and exit codes live here, each subcommand's work lives in its
own module (``simulate`` today; ``explain``, ``verify``, ``approve`` … join as further
subparsers). Errors a person will read name the file and field at fault and exit nonzero.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from identity_risk.cli import approve, explain, feedback, release, simulate, verify
from identity_risk.cli.inputs import InputError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl risk",
        description="Question and steer the identity-risk operator.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    simulate.add_parser(sub)
    explain.add_parser(sub)
    verify.add_parser(sub)
    approve.add_parser(sub)
    release.add_parser(sub)
    feedback.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kubectl-risk`` executable."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except InputError as error:
        print(f"kubectl risk {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
