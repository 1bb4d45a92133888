"""Property: whatever a model file's header holds, loading it returns a model or raises a
DistillError, quickly, and never allocates what the header only declares."""

from __future__ import annotations

import copy
import resource
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distillcli.errors import DistillError
from distillcli.modelfile import load_model

EXTREMES = [0, -1, 1, 3, 2**31, 2**40, -(2**63), 10**9, 0.5, -0.0, 1e308, float("inf"), float("nan"), True, None,
            "", "x" * 300, "../../etc/passwd", [], {}, [1, 2, 3], {"a": 1}]
scalars = st.one_of(st.sampled_from(EXTREMES), st.integers(), st.floats(), st.text(max_size=20), st.booleans(),
                    st.none())
garbage = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                       max_leaves=10)
tensors = st.builds(lambda shape, dtype: torch.zeros(shape, dtype=dtype),
                    st.lists(st.integers(0, 9), max_size=4).map(tuple),
                    st.sampled_from([torch.float32, torch.int64, torch.bool, torch.float16, torch.uint8]))
values = st.one_of(garbage, tensors)


def _places(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _places(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _places(value, prefix + (i,))
    return out


@st.composite
def mutated(draw: st.DrawFn, payload: dict) -> dict:
    out = {k: copy.deepcopy(v) for k, v in payload.items() if k != "state_dict"}
    out["state_dict"] = dict(payload["state_dict"])  # tensors are shared, never edited in place
    places = _places({k: v for k, v in out.items() if k != "state_dict"}) + [("state_dict", k) for k in
                                                                             out["state_dict"]]
    places.sort(key=lambda p: p[0] in ("format", "format_version"))  # hypothesis favours the first choices
    for _ in range(draw(st.integers(1, 3))):
        place = draw(st.sampled_from(places))
        parent: Any = out
        try:
            for part in place[:-1]:
                parent = parent[part]
            parent[place[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced the way there
        action = draw(st.sampled_from(["replace", "extreme", "delete", "scale", "tensor", "add"]))
        if action == "replace":
            parent[place[-1]] = draw(values)
        elif action == "extreme":
            parent[place[-1]] = draw(st.sampled_from(EXTREMES))
        elif action == "delete":
            del parent[place[-1]]
        elif action == "scale" and isinstance(parent[place[-1]], int):  # a declared shape, made odd
            parent[place[-1]] = draw(st.sampled_from([0, -parent[place[-1]], parent[place[-1]] * 1000, 2**40, 1]))
        elif action == "tensor":
            parent[place[-1]] = draw(tensors)
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(values)
    return out


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "model.pt"


def test_damaged_model_files_load_or_raise_distill_error(tiny_payload: dict, scratch: Path) -> None:
    load_model(_write(scratch, tiny_payload))  # warm: imports and first-build costs outside the deadline
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @settings(max_examples=150, deadline=2000, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(mutated(tiny_payload))
    def check(payload: dict) -> None:
        try:
            load_model(_write(scratch, payload))
        except DistillError as e:
            assert e.exit_code == 2 and str(scratch) in str(e)

    check()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert grown < 512 << 10, f"loading damaged files raised peak memory by {grown >> 10} MiB"


def _write(path: Path, payload: dict) -> Path:
    torch.save(payload, path)
    return path
