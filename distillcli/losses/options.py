"""The options of every loss, as a recipe writes them: the step-level distillation block
(``KDOptions``) and one block per term of ``loss:``. Pure pydantic, without torch, so that a
recipe validates without loading the methods; each method's module explains its defaults.

The softmax temperature is declared once (``Temperature``): a term that softens logits (kd, dkd,
dist) uses its own ``temperature`` if set, else the step's if the recipe sets one, else its
method's default (``default_temperature``: kd and dkd 4, dist 1). The step's ``alpha`` is kd's
alone (soft against hard labels); DKD's ``alpha``/``beta`` are its own weights.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Temperature = Annotated[float, Field(gt=0, le=100)]
Alpha = Annotated[float, Field(ge=0, le=1)]


class KDOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: Temperature | None = Field(
        None, description="distillation: softmax temperature T of both models' logits, for every term that softens "
                          "them (kd, dkd, dist) and does not set its own (default: each method's: kd and dkd 4, "
                          "dist 1)")
    alpha: Alpha = Field(0.5, description="distillation: weight of kd's soft (teacher) term; 1 - alpha weighs the "
                                          "labels (0.5 beat 0.9 on held-out images at a 15-epoch budget, "
                                          "docs/benchmarks.md)")
    teacher_cache: Literal["auto", "off", "required"] = Field(
        "auto", description="distillation: store the teacher's outputs on disk and reuse them (auto: where a store "
                            "can serve; required: an error where it cannot; off: run the teacher every batch)")


class SelfDistillOptions(KDOptions):
    """A fine-tune inside a compression step (prune, share, QAT): by default it distils from a frozen
    copy of the model as it was before the step."""

    distill: bool = Field(True, description="fine-tune by distilling from a frozen copy of the model as it was "
                                            "before this step; false: cross-entropy on the labels only")
    alpha: Alpha = Field(0.9, description="distillation: weight of the soft term in the fine-tune; 1 - alpha weighs "
                                          "the labels (0.9: the fine-tunes' figures were measured with it)")


class SoftOptions(BaseModel):
    """A term that softens logits by a temperature: its own, or the step's, or its method's default."""

    model_config = ConfigDict(extra="forbid")
    default_temperature: ClassVar[float] = 4.0  # Hinton et al.'s and DKD's CIFAR setting

    temperature: Temperature | None = Field(None, description="softmax temperature T (default: the step's "
                                                              "temperature, else the method's)")


class KDTermOptions(SoftOptions):
    """The kd term. It carries the hard labels itself, through alpha, exactly as ``loss: kd`` does."""

    weight: float = Field(1.0, ge=0, le=1e4, description="multiplies the whole kd term")
    alpha: Alpha | None = Field(None, description="weight of the soft term; 1 - alpha weighs the labels "
                                                  "(default: the step's alpha)")


class CEOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weight: float = Field(1.0, ge=0, le=1e4, description="multiplies the hard-label cross-entropy")


class DKDOptions(SoftOptions):
    weight: float = Field(1.0, ge=0, le=1e4, description="multiplies the whole DKD term")
    alpha: float = Field(1.0, ge=0, le=100, description="weight of TCKD (target vs. rest)")
    beta: float = Field(2.0, ge=0, le=100, description="weight of NCKD (among non-target classes); the paper's 8 "
                                                       "collapsed ResNet-56 -> ResNet-20 here, 2 trains it")
    warmup_epochs: int = Field(20, ge=0, le=10_000, description="epochs over which the DKD weight ramps up linearly "
                                                                "(20 also on 15-epoch runs: a held-out search preferred "
                                                                "it to 1)")


class DISTOptions(SoftOptions):
    # chosen on a held-out tenth of CIFAR-10's training images for the 15-epoch CPU budget
    # (docs/benchmarks.md): the paper's CIFAR-100 setting, beta = gamma = 2 at T = 4, starts slowly
    default_temperature: ClassVar[float] = 1.0

    weight: float = Field(1.0, ge=0, le=1e4, description="multiplies the whole DIST term")
    beta: float = Field(1.0, ge=0, le=100, description="weight of the inter-class relation (per sample)")
    gamma: float = Field(1.0, ge=0, le=100, description="weight of the intra-class relation (per class)")


class FitNetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weight: float = Field(100.0, ge=0, le=1e4, description="multiplies the hint MSE")
    teacher_layer: str = Field(min_length=1, max_length=300, description="teacher module giving the hint, e.g. net.layer3")
    student_layer: str = Field(min_length=1, max_length=300, description="student module guided, e.g. net.layer3")


_Names = Annotated[list[str], Field(min_length=1, max_length=16)]


class ATOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weight: float = Field(1000.0, ge=0, le=1e6, description="beta: multiplies half the summed map distances")
    teacher_layers: _Names | Literal["stages"] = Field(
        description="teacher modules, e.g. [net.layer2, net.layer3]; or `stages`: the feature stages the model "
        "declares (timm's feature_info), else the last module at each feature-map size, paired with the "
        "student's by reduction of the input size")
    student_layers: _Names | Literal["stages"] = Field(description="student modules, paired in order; or `stages`")
    p: float = Field(2.0, ge=1, le=8, description="exponent of |feature| in the attention map")

    @model_validator(mode="after")
    def _paired(self) -> "ATOptions":
        if (self.teacher_layers == "stages") != (self.student_layers == "stages"):
            raise ValueError("at: give `stages` for both teacher_layers and student_layers, or name both")
        if self.teacher_layers != "stages" and len(self.teacher_layers) != len(self.student_layers):
            raise ValueError(f"at pairs layers in order: {len(self.teacher_layers)} teacher_layers but "
                             f"{len(self.student_layers)} student_layers; give as many of each")
        return self
