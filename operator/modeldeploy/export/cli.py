"""Arguments and error handling of `modeldeploy export` (the stages live in pipeline.py).

`modeldeploy.cli.main` wires the `export` sub-command to `add_arguments` and `run`.
Progress and errors go to stderr; the ModelDeployment YAML is the only thing on stdout,
so `modeldeploy export ... | kubectl apply -f -` works.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from ..cli.extras import EXPORT, missing_extra_message
from .errors import ExportError, describe
from .signing import add_arguments as add_signing_arguments

DTYPE_NAMES = "float32, float16, float64, int64, int32, int8, uint8, bool"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("model source (one of)")
    src.add_argument("model", nargs="?", metavar="PACKAGE.MODULE:OBJECT",
                     help="importable nn.Module class, factory function or instance")
    src.add_argument("--torchscript", metavar="FILE", help="a TorchScript file (torch.jit.save) instead")
    src.add_argument("--kwargs", metavar="JSON", help="constructor/factory keyword arguments as a JSON object")
    src.add_argument("--weights", metavar="FILE", help="state_dict to load (torch.save; read with weights_only)")

    io = parser.add_argument_group("example input")
    io.add_argument("--input-shape", action="append", default=[], metavar="SHAPE",
                    help="example input shape, batch first, e.g. 1,3,32,32 (repeat for several inputs)")
    io.add_argument("--input-dtype", action="append", default=[], metavar="DTYPE",
                    help=f"one for all inputs or one per input: {DTYPE_NAMES} (default float32)")
    io.add_argument("--input-name", action="append", default=[], metavar="NAME",
                    help="input tensor names (default: forward()'s parameter names)")
    io.add_argument("--output-name", action="append", default=[], metavar="NAME",
                    help="output tensor names (default: output, or output_0, output_1, ...)")

    exp = parser.add_argument_group("export and checks")
    exp.add_argument("--opset", type=int, metavar="N", help="ONNX opset (default: the exporter's)")
    exp.add_argument("--exporter", choices=["dynamo", "torchscript"],
                     help="torch.onnx exporter (default: dynamo; TorchScript input always uses torchscript)")
    exp.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance vs torch (default 1e-4)")
    exp.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance vs torch (default 1e-3)")
    exp.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    exp.add_argument("--quantize", choices=["int8"], help="also quantize (dynamic int8) and serve that model")
    exp.add_argument("--samples", type=int, default=64, metavar="N",
                     help="random samples for the int8-vs-fp32 comparison (default 64)")
    exp.add_argument("--max-quant-diff", type=float, metavar="X",
                     help="fail if int8 outputs differ from fp32 by more than X")
    exp.add_argument("--min-top1-agreement", type=float, metavar="FRACTION",
                     help="fail if int8 and fp32 top-1 classes agree on less than FRACTION of samples")

    repo = parser.add_argument_group("repository and manifest")
    repo.add_argument("--name", help="model and ModelDeployment name (default: from the class or file name)")
    repo.add_argument("--version", type=int, default=1, metavar="N", help="model version directory (default 1)")
    repo.add_argument("--out", default="model_repository", metavar="DIR",
                      help="repository root (default ./model_repository)")
    repo.add_argument("--force", action="store_true", help="overwrite an existing model version")
    repo.add_argument("--max-batch-size", type=int, default=8, metavar="N",
                      help="Triton max_batch_size; 0 exports fixed shapes without a batch dimension (default 8)")
    repo.add_argument("--max-queue-delay-us", type=int, default=1000, metavar="US",
                      help="dynamic batching queue delay (default 1000)")
    repo.add_argument("--preferred-batch-size", type=int, action="append", default=[], metavar="N",
                      help="Triton preferred_batch_size (repeatable)")
    repo.add_argument("--instance-kind", choices=["KIND_GPU", "KIND_CPU", "KIND_AUTO"],
                      help="Triton instance_group kind (default: Triton's choice)")
    repo.add_argument("--instance-count", type=int, metavar="N", help="Triton instances per device")
    repo.add_argument("--uri-prefix", metavar="URI",
                      help="where the repository will be served from, e.g. s3://bucket/models "
                           "(default: file:// URI of --out)")
    repo.add_argument("--runtime", choices=["onnx", "triton"], default="onnx",
                      help="spec.runtime.kind of the printed ModelDeployment (default onnx)")
    repo.add_argument("--manifest", metavar="FILE", help="also write the ModelDeployment YAML here")

    add_signing_arguments(parser)
    sealed = parser.add_argument_group("encryption")
    sealed.add_argument("--encrypt-to", action="append", default=[], metavar="KEY",
                        help="write the model age-encrypted (model.onnx.age) to this recipient: an age public key "
                             "(age1...) or a file of them (repeatable); the digest covers the ciphertext")
    sealed.add_argument("--key-secret", metavar="NAME",
                        help="the Secret with the matching age identity, named in the manifest's "
                             "spec.model.encryption.keySecretRef (default: NAME-model-key)")

    parser.add_argument("--debug", action="store_true", help="show tracebacks and the exporter's own output")


def run(args: argparse.Namespace) -> int:
    """Run the export; 0 on success, 1 with a one-line `error: ...` on stderr otherwise."""
    debug = bool(getattr(args, "debug", False))
    try:
        from .pipeline import export  # torch is imported here, not at CLI start-up
    except ImportError as exc:  # torch, onnx, numpy: the export extra
        print(f"error: {missing_extra_message('modeldeploy export', EXPORT, exc)}", file=sys.stderr)
        return 2
    try:
        manifest_text = export(args, sys.stderr)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if debug:
            traceback.print_exc()
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unforeseen library failure: still one line
        print(f"error: unexpected {describe(exc)} (rerun with --debug for the traceback)", file=sys.stderr)
        if debug:
            traceback.print_exc()
        return 1
    sys.stdout.write(manifest_text)
    sys.stdout.flush()
    return 0
