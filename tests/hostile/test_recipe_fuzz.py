"""Property: whatever a recipe holds, validation returns or raises a DistillError, quickly."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distillcli.errors import DistillError
from distillcli.recipe import validate_raw
from tests.conftest import tiny_recipe

EXTREME_NUMBERS = [0, -1, 1, 2**31, 2**32, -(2**63), 2**64, 10**30, 0.5, -0.0, 1e308, -1e308, 5e-324,
                   float("inf"), float("-inf"), float("nan")]

# Text keys only: read_yaml turns every key into text before validation. Strings do not start
# with "~" and stay short: such checkpoint paths fail in semantic_problems (see
# test_checkpoint_paths_that_break_the_file_check in test_known_gaps.py).
texts = st.text(max_size=30).filter(lambda s: not s.startswith("~"))
scalars = st.one_of(st.none(), st.booleans(), st.sampled_from(EXTREME_NUMBERS), st.integers(), st.floats(),
                    texts, st.dates(), st.datetimes(), st.binary(max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(texts, inner, max_size=4)), max_leaves=12)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in the recipe a mutation can hit: (key or index, ...)."""
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, prefix + (i,))
    return out


BASE = tiny_recipe(steps=[{"train": {"model": "teacher", "epochs": 2, "lr": 0.05}}, {"distill": {"epochs": 3}},
                          {"prune": {"sparsity": 0.5, "finetune": {"epochs": 1}}}, {"share": {"clusters": 8}},
                          {"quantize": {"method": "static"}}, {"export": {"name": "m.onnx"}}, {"evaluate": {}}])
PLACES = _paths(BASE)
STEP_KINDS = ["train", "distill", "prune", "share", "quantize", "export", "evaluate", "trian", ""]


@st.composite
def mutated(draw: st.DrawFn) -> dict:
    recipe = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        place = draw(st.sampled_from(PLACES))
        if not place:
            continue
        parent: Any = recipe
        try:
            for part in place[:-1]:
                parent = parent[part]
            current = parent[place[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this place
        action = draw(st.sampled_from(["replace", "extreme", "delete", "wrap", "rename", "add", "step"]))
        if action == "replace":
            parent[place[-1]] = draw(values)
        elif action == "extreme":
            parent[place[-1]] = draw(st.sampled_from(EXTREME_NUMBERS))
        elif action == "delete":
            del parent[place[-1]]
        elif action == "wrap":
            parent[place[-1]] = draw(st.sampled_from([[current], {"x": current}, {place[-1]: current}
                                                      if isinstance(place[-1], str) else [[current]]]))
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(texts)] = parent.pop(place[-1])
        elif action == "add" and isinstance(current, dict):
            current[draw(texts)] = draw(values)
        elif action == "step" and isinstance(recipe.get("steps"), list):
            recipe["steps"].append({draw(st.sampled_from(STEP_KINDS)): draw(values)})
    return recipe


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """Import what validation imports once (torchvision's model list ...), outside the deadline."""
    for arch in ("cnn", "resnet", "torchvision:resnet18"):
        try:
            validate_raw(tiny_recipe(student={"arch": arch}))
        except DistillError:
            pass


@settings(max_examples=150, deadline=2000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_validation_returns_or_raises_distill_error(recipe: dict) -> None:
    try:
        validate_raw(recipe)
    except DistillError as e:
        assert e.exit_code == 2 and str(e)


def test_fuzz_base_is_valid() -> None:
    """The mutations start from a valid recipe, so they probe every key."""
    validate_raw(copy.deepcopy(BASE))


def test_datetime_values_are_plain_errors() -> None:
    with pytest.raises(DistillError):
        validate_raw(tiny_recipe(seed=dt.datetime(2024, 1, 1)))
