"""What kind of file a --weights or --torchscript argument is, read without unpickling anything.

torch.load and torch.jit.load fail on the wrong kind of file with messages about their internals
("internal miniz error", "pop from empty list", a weights_only essay). Looking at the container
(a zip archive with `data.pkl` and `constants.pkl`/`code/`, or a legacy pickle) and at the classes
the pickle names lets the CLI say what the file is and how to save the right one.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

# Classes a state_dict's pickle names: containers and tensor rebuilding, never a module.
_STATE_DICT_MODULES = ("collections", "torch._utils", "torch", "builtins", "__builtin__", "_codecs", "numpy")
_PICKLE_PROTOCOL_2_OR_LATER = b"\x80"


class FileKind(Enum):
    MISSING = "missing"
    NOT_TORCH = "not a torch file"
    TORCHSCRIPT = "TorchScript (torch.jit.save)"
    PICKLE = "torch.save"  # a state_dict, a checkpoint dict, or a whole pickled object


@dataclass(frozen=True)
class TorchFile:
    kind: FileKind
    classes: tuple[str, ...] = ()  # `module.Class` names the pickle refers to (PICKLE only)

    @property
    def object_classes(self) -> list[str]:
        """Classes that a state_dict never holds: a pickled model's own class and its layers."""
        return [c for c in self.classes if not c.startswith(_STATE_DICT_MODULES) or c.startswith("torch.nn.")]


def _pickle_classes(data: bytes, pickles: int = 1) -> tuple[str, ...]:
    """`module.Class` names in the first ``pickles`` pickles of ``data`` (legacy files chain several)."""
    found: list[str] = []
    stream = io.BytesIO(data)
    for _ in range(pickles):
        strings: list[str] = []
        try:
            for opcode, arg, _pos in pickletools.genops(stream):
                if opcode.name == "GLOBAL" and isinstance(arg, str):
                    found.append(arg.replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
        except Exception:  # truncated, or raw storage bytes after the pickles: what was read is enough
            break
    return tuple(dict.fromkeys(found))


def inspect_file(path: Path) -> TorchFile:
    """The kind of ``path`` and, for torch.save files, the classes its pickle names."""
    if not path.is_file():
        return TorchFile(FileKind.MISSING)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                leaves = {name.split("/", 1)[-1] for name in names}
                if "constants.pkl" in leaves or any(name.split("/")[1:2] == ["code"] for name in names):
                    return TorchFile(FileKind.TORCHSCRIPT)
                data = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
                if data is None:
                    return TorchFile(FileKind.NOT_TORCH)
                return TorchFile(FileKind.PICKLE, _pickle_classes(archive.read(data)))
        except (OSError, zipfile.BadZipFile):
            return TorchFile(FileKind.NOT_TORCH)
    with path.open("rb") as stream:
        head = stream.read(1)
        rest = stream.read() if head == _PICKLE_PROTOCOL_2_OR_LATER else b""
    if head != _PICKLE_PROTOCOL_2_OR_LATER:
        return TorchFile(FileKind.NOT_TORCH)
    # The legacy (pre-1.6) format: magic number, protocol and system pickles, the object's, then storages.
    return TorchFile(FileKind.PICKLE, _pickle_classes(head + rest, pickles=5))
