"""One stored entry: a checked header and raw arrays, read without unpickling anything.

Layout: ``MAGIC``, the header's length (8 bytes, little-endian), the header (JSON: what the
entry is, each array's dtype/shape/offset and a blake2b digest of the payload), the payload.
Anything that does not add up (magic, lengths, JSON, shapes, digest) is a ``CorruptEntry``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from distillcli.atomic_write import atomic_path
from distillcli.data.loaders import tensor_bytes

MAGIC = b"distill-teacher-outputs\n"
FORMAT = 1
MAX_HEADER = 1 << 20
DTYPES = {str(t).removeprefix("torch."): t for t in (torch.float16, torch.int16, torch.int32, torch.int64)}


class CorruptEntry(Exception):
    """The file is not a complete entry (truncated, altered, or another format)."""


def write_entry(path: Path, about: dict[str, Any], arrays: dict[str, Tensor]) -> int:
    """Write atomically (a crash leaves the previous file or none); returns the file's size."""
    specs, chunks, offset = [], [], 0
    for name, array in arrays.items():
        data = tensor_bytes(array)
        specs.append({"name": name, "dtype": str(array.dtype).removeprefix("torch."), "shape": list(array.shape),
                      "offset": offset, "nbytes": len(data)})
        chunks.append(data)
        offset += len(data)
    payload = b"".join(chunks)
    header = json.dumps({"format": FORMAT, "about": about, "arrays": specs,
                         "blake2b": hashlib.blake2b(payload).hexdigest()}).encode()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(MAGIC + len(header).to_bytes(8, "little") + header + payload)
    return len(MAGIC) + 8 + len(header) + len(payload)


def read_entry(path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(``about``, arrays); raises CorruptEntry when anything is off, OSError when unreadable."""
    raw = path.read_bytes()
    start = len(MAGIC) + 8
    if raw[:len(MAGIC)] != MAGIC or len(raw) < start:
        raise CorruptEntry("not a teacher-output file")
    size = int.from_bytes(raw[len(MAGIC):start], "little")
    if size > MAX_HEADER or len(raw) < start + size:
        raise CorruptEntry("truncated header")
    try:
        header = json.loads(raw[start:start + size])
        payload = raw[start + size:]
        specs = header["arrays"]
        if header["format"] != FORMAT or sum(s["nbytes"] for s in specs) != len(payload):
            raise CorruptEntry(f"{len(payload)} payload bytes where the header expects another size")
        if hashlib.blake2b(payload).hexdigest() != header["blake2b"]:
            raise CorruptEntry("checksum mismatch")
        arrays = {}
        for s in specs:
            chunk = bytearray(payload[s["offset"]:s["offset"] + s["nbytes"]])
            arrays[s["name"]] = torch.frombuffer(chunk, dtype=DTYPES[s["dtype"]]).reshape(s["shape"]) \
                if chunk else torch.empty(s["shape"], dtype=DTYPES[s["dtype"]])
        return header["about"], arrays
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CorruptEntry(f"unreadable header or arrays ({type(e).__name__})") from None
