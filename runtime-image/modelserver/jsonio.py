"""JSON for the hot path: orjson when installed (several times faster on tensor data), else stdlib."""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is in the runtime extra
    orjson = None  # type: ignore[assignment]

if orjson is not None:
    JSONDecodeError: type[Exception] = orjson.JSONDecodeError

    def loads(data: bytes | memoryview) -> Any:
        return orjson.loads(data)

    def dumps(obj: Any) -> bytes:
        # OPT_SERIALIZE_NUMPY is not needed: outputs are converted with tolist() already.
        return orjson.dumps(obj)

else:
    JSONDecodeError = ValueError

    def loads(data: bytes | memoryview) -> Any:
        return json.loads(bytes(data))

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()
