"""The recipe's ``loss:`` option, typed: a name, or a list of single-key {method: options} terms.

``LossTerm`` has one optional field per registered loss, made from ``LOSSES``, so a loss that a
plugin registers validates, lists and appears in the schema like the built-in ones.
Hard labels enter a combined loss exactly once: through the ``kd`` term's alpha (its 1 - alpha
part, as ``loss: kd`` always did) or through an explicit ``ce`` term, never both (checked).
A name expands to its entry's preset (``dkd`` -> [ce, dkd], as the paper trains it); fitnet and
at need layer names, so they are written as terms.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_serializer, model_validator

from distillcli.losses.registry import LOSSES, LossEntry
from distillcli.registry import closest


class _OneMethod(BaseModel):
    """One weighted term: exactly one of the keys."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _one(self) -> "_OneMethod":
        given = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a loss term names exactly one method, e.g. `{{dkd: {{weight: 1}}}}`; got "
                             f"{', '.join(given) or 'none'} (methods: {', '.join(type(self).model_fields)})")
        return self

    @property
    def method(self) -> str:
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)

    @property
    def options(self) -> BaseModel:
        return getattr(self, self.method)

    @property
    def entry(self) -> LossEntry:
        return LOSSES.get(self.method)

    @model_serializer(mode="wrap")
    def _only_the_method(self, handler: Any) -> Any:
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


LossTerm: type[_OneMethod] = create_model(  # type: ignore[call-overload]
    "LossTerm", __base__=_OneMethod, __doc__="One weighted term: exactly one of the keys.",
    **{e.name: (e.options | None, Field(None, description=e.summary)) for e in LOSSES.entries()})


def parse_loss(value: Any) -> Any:
    """A name or one {method: options} mapping -> the list form. In a list, a bare name is that one
    term with its defaults (``[kd, {at: ...}]``); a name alone expands to its entry's preset."""
    if isinstance(value, str):
        entry = _known(value)
        if entry.preset is None:
            raise ValueError(f"loss {value!r} needs its options (feature terms need layer names): write it as a term, e.g. "
                             f"[{{kd: {{}}}}, {{{value}: {{...}}}}] (`distill list losses {value} --options`)")
        return [{name: {}} for name in entry.preset]
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [{_known(t).name: {}} if isinstance(t, str) else t for t in value]
    return value


def _known(name: str) -> LossEntry:
    if name not in LOSSES:
        guess = closest(name, LOSSES.names())
        tail = f"; did you mean {guess!r}?" if guess else f"; names: {', '.join(LOSSES.names())}"
        raise ValueError(f"unknown loss name {name!r}{tail}")
    return LOSSES.get(name)


def loss_problems(terms: list[_OneMethod], step_alpha: float, step_keys: set[str]) -> list[str]:
    """What makes a list of terms unusable: the labels counted twice, nothing that trains the
    classifier, or a step-level ``alpha`` / ``temperature`` (``step_keys``: those the recipe set)
    that no term reads."""
    problems = []
    has_ce = any(t.method == "ce" for t in terms)
    for t in terms:
        if t.method == "kd" and has_ce:
            alpha = step_alpha if t.options.alpha is None else t.options.alpha  # type: ignore[attr-defined]
            if alpha < 1.0:
                problems.append(f"the hard labels count twice: the kd term already weighs them by 1 - alpha = "
                                f"{1 - alpha:g}, and there is a ce term; set `alpha: 1` in the kd term or drop the "
                                "ce term")
    if not any(t.entry.labels or t.entry.teacher_logits for t in terms):
        problems.append(f"no term trains the classifier: {', '.join(t.method for t in terms)} read only features, "
                        "so the outputs never learn; add a term on the outputs, e.g. [{kd: {}}, ...] or [{ce: {}}, "
                        "...]")
    for key, users, meaning in (("alpha", ("kd",), "weighs kd's soft term against the labels"),
                                ("temperature", None, "softens the logits of kd, dkd and dist terms")):
        if key in step_keys and not any(_reads_step(t, key, users) for t in terms):
            own = [f"{t.method}.{key}" for t in terms if key in type(t.options).model_fields]
            problems.append(f"the step's {key} {meaning}, and no term here uses it"
                            + (f"; set the term's own key instead ({', '.join(own)}) or drop {key}" if own else
                               f"; drop {key}"))
    return problems


def _reads_step(term: _OneMethod, key: str, users: tuple[str, ...] | None) -> bool:
    """Whether ``term`` takes the step-level ``key``: it has the key, left unset (None)."""
    fields = type(term.options).model_fields
    return (users is None or term.method in users) and key in fields and getattr(term.options, key) is None
