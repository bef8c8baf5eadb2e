"""`python -m modeldeploy.export ...`: the same as `modeldeploy export ...`."""

from __future__ import annotations

import argparse
import sys

from .cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modeldeploy export",
        description="Export a torch model to a verified ONNX model in a Triton-layout repository.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
