"""Read Triton's ``config.pbtxt``.

Parsed with protobuf's text_format into Triton's own ``ModelConfig`` message (shipped in
``tritonclient.grpc.model_config_pb2``), so any valid Triton config is accepted; unknown
fields are tolerated because newer Triton releases add fields our copy may not know.
Only the batching and instance fields change how modelserver serves the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class ModelSettings:
    """What the server takes from config.pbtxt.

    Without a config.pbtxt (``present`` False) the command-line defaults apply. With one, it
    is authoritative like in Triton: ``max_batch_size`` absent means 0 (no batching) and
    requests are only batched server-side when a ``dynamic_batching`` block is present.
    """

    present: bool = False
    max_batch_size: int = 0
    dynamic_batching: bool = False
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 0
    instance_count: int | None = None
    proto: model_config_pb2.ModelConfig = field(default_factory=model_config_pb2.ModelConfig)


def parse_config(text: str) -> ModelSettings:
    msg = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, msg, allow_unknown_field=True)
    except text_format.ParseError as exc:
        raise ConfigError(f"config.pbtxt: {exc}") from None
    has_db = msg.HasField("dynamic_batching")
    db = msg.dynamic_batching
    counts = [g.count for g in msg.instance_group if g.count > 0]
    return ModelSettings(
        present=True,
        max_batch_size=max(0, msg.max_batch_size),
        dynamic_batching=has_db,
        preferred_batch_sizes=tuple(db.preferred_batch_size) if has_db else (),
        max_queue_delay_us=db.max_queue_delay_microseconds if has_db else 0,
        instance_count=sum(counts) if counts else None,
        proto=msg,
    )


def load_config(path: Path) -> ModelSettings:
    if not path.is_file():
        return ModelSettings()
    return parse_config(path.read_text(encoding="utf-8"))
