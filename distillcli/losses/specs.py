"""The recipe's ``loss:`` option, typed: a name, or a list of single-key {method: options} terms.

Hard labels enter a combined loss exactly once: through the ``kd`` term's alpha (its 1 - alpha
part, as ``loss: kd`` always did) or through an explicit ``ce`` term, never both (checked).
Names expand to the paper recipes: ``kd`` -> [kd], ``dkd`` -> [ce, dkd], ``dist`` -> [ce, dist],
``ce`` -> [ce]; fitnet and at need layer names, so they are written as terms.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from distillcli.losses.options import ATOptions, CEOptions, DISTOptions, DKDOptions, FitNetOptions, KDTermOptions
from distillcli.registry import closest

NAMES: dict[str, list[dict[str, Any]]] = {
    "kd": [{"kd": {}}], "ce": [{"ce": {}}],
    "dkd": [{"ce": {}}, {"dkd": {}}], "dist": [{"ce": {}}, {"dist": {}}],
}


class LossTerm(BaseModel):
    """One weighted term: exactly one of the keys."""

    model_config = ConfigDict(extra="forbid")

    kd: KDTermOptions | None = Field(None, description="Hinton KD (soft targets; labels through alpha)")
    dkd: DKDOptions | None = Field(None, description="Decoupled KD (Zhao et al. 2022)")
    dist: DISTOptions | None = Field(None, description="DIST, correlation of predictions (Huang et al. 2022)")
    fitnet: FitNetOptions | None = Field(None, description="FitNets hint on one layer pair (Romero et al. 2015)")
    at: ATOptions | None = Field(None, description="attention transfer on layer pairs (Zagoruyko & Komodakis 2017)")
    ce: CEOptions | None = Field(None, description="hard-label cross-entropy")

    @model_validator(mode="after")
    def _one(self) -> "LossTerm":
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

    @model_serializer(mode="wrap")
    def _only_the_method(self, handler: Any) -> Any:
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


def parse_loss(value: Any) -> Any:
    """A name or one {method: options} mapping -> the list form; lists pass through."""
    if isinstance(value, str):
        if value not in NAMES:
            guess = closest(value, list(NAMES) + ["fitnet", "at"])
            tail = f"; did you mean {guess!r}?" if guess else f"; names: {', '.join(NAMES)}"
            extra = (" (fitnet and at need layer names: write them as terms, e.g. "
                     "[{kd: {}}, {fitnet: {teacher_layer: net.layer3, student_layer: net.layer3}}])"
                     if value in ("fitnet", "at") else tail)
            raise ValueError(f"unknown loss name {value!r}{extra}")
        return [dict(term) for term in NAMES[value]]
    if isinstance(value, dict):
        return [value]
    return value


def label_problem(terms: list[LossTerm], step_alpha: float) -> str | None:
    """Why the labels would count twice, if they would."""
    has_ce = any(t.ce is not None for t in terms)
    for t in terms:
        if t.kd is not None and has_ce:
            alpha = step_alpha if t.kd.alpha is None else t.kd.alpha
            if alpha < 1.0:
                return (f"the hard labels count twice: the kd term already weighs them by 1 - alpha = "
                        f"{1 - alpha:g}, and there is a ce term; set `alpha: 1` in the kd term or drop the ce term")
    return None
