"""The five stages of `modeldeploy export`, run in order with a progress line each."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import TextIO

import numpy as np

from .encryption import SECRET_NAME_RE, SUFFIX, encrypt_model, parse_recipients
from .errors import ExportError
from .inputs import InputSpec, build_specs, random_inputs
from .loader import LoadedModel, load_module, load_torchscript, module_label, parse_kwargs, run_torch
from .onnx_export import Exporter, export_onnx, opset_of
from .progress import Progress, human_bytes
from .quantize import QuantReport, measure, quantize_int8
from .repository import check_free, check_name, default_name, manifest, manifest_yaml, write_repository
from .signing import key_from_args, manifest_signature, sign_artifact, trust_hint
from .verify import compare, merge, run_onnx, session


def _check_args(args: argparse.Namespace) -> None:
    if bool(args.model) == bool(args.torchscript):
        raise ExportError("give exactly one model: PACKAGE.MODULE:OBJECT or --torchscript FILE")
    if args.torchscript and (args.kwargs or args.weights):
        raise ExportError("--kwargs and --weights apply to PACKAGE.MODULE:OBJECT, not to --torchscript")
    if args.torchscript and args.exporter == "dynamo":
        raise ExportError("TorchScript input needs --exporter torchscript (torch.export cannot trace it)")
    if args.version < 1:
        raise ExportError(f"--version must be >= 1, got {args.version}")
    if args.max_batch_size < 0:
        raise ExportError(f"--max-batch-size must be >= 0, got {args.max_batch_size}")
    if args.atol < 0 or args.rtol < 0:
        raise ExportError("--atol and --rtol must be >= 0")
    bad = [b for b in args.preferred_batch_size if not 1 <= b <= args.max_batch_size]
    if bad:
        raise ExportError(f"preferred batch sizes {bad} must be within 1..--max-batch-size ({args.max_batch_size})")
    if args.instance_count is not None and args.instance_count < 1:
        raise ExportError(f"--instance-count must be >= 1, got {args.instance_count}")
    if args.samples < 1:
        raise ExportError(f"--samples must be >= 1, got {args.samples}")
    if (args.max_quant_diff is not None or args.min_top1_agreement is not None) and not args.quantize:
        raise ExportError("--max-quant-diff/--min-top1-agreement need --quantize int8")


def _model_name(args: argparse.Namespace) -> str:
    """--name, else the name derived from the class or file name (known before anything is loaded)."""
    if args.name:
        return check_name(args.name)
    return default_name(Path(args.torchscript).stem if args.torchscript else module_label(args.model))


def _load(args: argparse.Namespace) -> LoadedModel:
    if args.torchscript:
        return load_torchscript(Path(args.torchscript))
    weights = Path(args.weights) if args.weights else None
    return load_module(args.model, parse_kwargs(args.kwargs), weights)


def _exporter(args: argparse.Namespace, loaded: LoadedModel) -> Exporter:
    if loaded.is_torchscript:
        return "torchscript"
    if args.exporter:
        return args.exporter
    # The dynamo exporter emits opset 18+ natively; older opsets are the TorchScript exporter's.
    return "torchscript" if args.opset is not None and args.opset < 18 else "dynamo"


def _output_names(args: argparse.Namespace, count: int) -> list[str]:
    if args.output_name:
        if len(args.output_name) != count:
            raise ExportError(f"got {len(args.output_name)} --output-name values but the model has {count} outputs")
        return list(args.output_name)
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def _describe_outputs(names: list[str], outputs: list[np.ndarray]) -> str:
    return ", ".join(f"{n} {o.dtype}{list(o.shape)}" for n, o in zip(names, outputs, strict=True))


def _verify(
    path: Path, loaded: LoadedModel, specs: list[InputSpec], out_names: list[str],
    batch: int, dynamic: bool, args: argparse.Namespace, rng: np.random.Generator,
) -> str:
    sess = session(path)
    in_names = [s.name for s in specs]
    # A second, different batch size proves the batch dimension really is dynamic.
    batches = [batch, batch + 2] if dynamic else [batch]
    results = []
    for b in batches:
        arrays = random_inputs(specs, b, rng)
        try:
            expected = run_torch(loaded.module, arrays, f"random inputs of batch {b}")
            actual = run_onnx(sess, in_names, arrays)
        except ExportError as exc:
            if b == batch:
                raise
            raise ExportError(f"the model is not batch-dynamic (batch {b} fails: {exc}); "
                              "export with --max-batch-size 0 for a fixed batch") from exc
        results.append(compare(expected, actual, out_names, args.atol, args.rtol))
    result = merge(results)
    tol = f"atol {args.atol:g}, rtol {args.rtol:g}"
    if not result.within_tolerance:
        raise ExportError(
            f"onnxruntime output {result.worst_output!r} differs from torch: "
            f"max abs diff {result.max_abs_diff:.3g} is beyond {tol}"
        )
    sizes = " and ".join(str(b) for b in batches)
    return f"max abs diff {result.max_abs_diff:.3g} at batch {sizes} ({tol})"


def _quant_summary(report: QuantReport) -> str:
    change = (report.int8_bytes - report.fp32_bytes) / report.fp32_bytes * 100
    text = f"{human_bytes(report.int8_bytes)} ({change:+.0f}%), max abs diff vs fp32 {report.max_abs_diff:.3g}"
    if report.top1_agreement is not None:
        text += f", top-1 agreement {report.top1_agreement:.1%}"
    return text + f" ({report.samples} samples)"


def _check_quant(report: QuantReport, args: argparse.Namespace) -> None:
    if args.max_quant_diff is not None and report.max_abs_diff > args.max_quant_diff:
        raise ExportError(f"int8 max abs diff {report.max_abs_diff:.3g} exceeds "
                          f"--max-quant-diff {args.max_quant_diff:g}")
    if args.min_top1_agreement is not None:
        if report.top1_agreement is None:
            raise ExportError("--min-top1-agreement needs a classifier output of shape [batch, classes]")
        if report.top1_agreement < args.min_top1_agreement:
            raise ExportError(f"int8 top-1 agreement {report.top1_agreement:.1%} is below "
                              f"--min-top1-agreement {args.min_top1_agreement:.1%}")


def export(args: argparse.Namespace, stream: TextIO) -> str:
    """Run every stage; returns the ModelDeployment YAML. Raises ExportError on bad input."""
    _check_args(args)
    name = _model_name(args)
    recipients = parse_recipients(args.encrypt_to)
    if args.key_secret and not recipients:
        raise ExportError("--key-secret needs --encrypt-to")
    if args.key_secret and not SECRET_NAME_RE.match(args.key_secret):
        raise ExportError(f"bad --key-secret {args.key_secret!r}: a Secret name is lowercase letters, digits, '-' "
                          "and '.' (max 253)")
    filename = "model.onnx" + (SUFFIX if recipients else "")
    check_free(Path(args.out), name, args.version, args.force, filename)  # an argument error: before any step
    signing_key = key_from_args(args)
    progress = Progress(5, stream)
    rng = np.random.default_rng(args.seed)
    dynamic = args.max_batch_size > 0

    with progress.step("loading model") as step:
        loaded = _load(args)
        specs = build_specs(args.input_shape, args.input_dtype, args.input_name, loaded.input_names)
        batch = specs[0].shape[0] if specs[0].shape else 1
        example = random_inputs(specs, batch, rng)
        outputs = run_torch(loaded.module, example)
        out_names = _output_names(args, len(outputs))
        params = sum(p.numel() for p in loaded.module.parameters())
        step.detail = f"{loaded.label}, {params:,} parameters; outputs {_describe_outputs(out_names, outputs)}"

    with tempfile.TemporaryDirectory(prefix="modeldeploy-export-") as tmp:
        fp32 = Path(tmp) / "model.onnx"
        exporter = _exporter(args, loaded)
        with progress.step("exporting to ONNX") as step:
            graph = export_onnx(loaded.module, example, fp32, [s.name for s in specs], out_names,
                                args.opset, dynamic, exporter, debug=args.debug)
            shape_kind = "dynamic batch" if dynamic else "fixed shapes"
            step.detail = (f"{exporter} exporter, opset {opset_of(graph)}, {shape_kind}, "
                           f"{human_bytes(fp32.stat().st_size)}")

        with progress.step("verifying with onnxruntime") as step:
            step.detail = _verify(fp32, loaded, specs, out_names, batch, dynamic, args, rng)

        served = fp32
        if args.quantize:
            with progress.step("quantizing to int8") as step:
                served = Path(tmp) / "model.int8.onnx"
                quantize_int8(fp32, served, debug=args.debug)
                report = measure(fp32, served, specs, args.samples, batch, dynamic, rng)
                step.detail = _quant_summary(report)
                _check_quant(report, args)
        else:
            progress.skip("quantizing", "no --quantize")

        with progress.step("writing repository") as step:
            import onnx

            out = Path(args.out)
            artifact = served
            if recipients:
                # Encrypt first: the repository's digest (and a signature over it) cover the ciphertext.
                artifact = Path(tmp) / filename
                encrypt_model(served, artifact, recipients)
            written = write_repository(
                out, name, args.version, artifact, onnx.load(str(served)),
                max_batch_size=args.max_batch_size, preferred_batch_sizes=args.preferred_batch_size,
                max_queue_delay_us=args.max_queue_delay_us, instance_kind=args.instance_kind,
                instance_count=args.instance_count, force=args.force, filename=filename,
            )
            step.detail = f"{written.model_path} ({human_bytes(written.model_path.stat().st_size)}), config.pbtxt"
            if recipients:
                step.detail += f"; age-encrypted to {len(recipients)} recipient(s)"

    prefix = (args.uri_prefix or out.resolve().as_uri()).rstrip("/")
    key_secret = (args.key_secret or f"{name}-model-key") if recipients else None
    doc = manifest(name, args.version, f"{prefix}/{name}/{args.version}/{filename}", written.digest,
                   args.runtime, args.max_batch_size, args.max_queue_delay_us, args.preferred_batch_size,
                   key_secret=key_secret)
    progress.note(f"digest: {written.digest}")
    if key_secret is not None:
        # The manifest names this Secret: without it the pods cannot mount the key and never start.
        progress.note(f"decrypt it in the cluster with: kubectl create secret generic {key_secret} -n NAMESPACE "
                      f"--from-file=identity=<the age identity of a recipient>")
    if signing_key is not None:
        # Last, after anything that changes the artifact: the signature covers the final bytes and the version.
        signed = sign_artifact(written.model_path, args.version, signing_key)
        model_uri = doc["spec"]["model"]["uri"]
        doc["spec"]["model"]["signature"] = manifest_signature(name, signing_key, model_uri, model_uri + ".sig")
        progress.note(f"signature: {signed.signature}")
        progress.note(f"trust it with: {trust_hint(name, signed, signing_key)}")
    text = manifest_yaml(doc)
    if args.manifest:
        try:
            Path(args.manifest).write_text(text)
        except OSError as exc:
            raise ExportError(f"cannot write --manifest {args.manifest}: {exc.strerror or exc}") from None
        progress.note(f"manifest: {args.manifest}")
    return text
