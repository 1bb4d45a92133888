"""A trained model that predicts no better than chance: the training collapsed.

A loss that turns NaN stops the run (the trainer checks it); a too-strong loss or learning rate
can instead drive the network into a state that predicts one class, with a finite loss. That
model measures at chance level, and the run should say so rather than report it as a result.
Only steps that trained for a few epochs are judged: after one or two epochs on a handful of
images (a smoke test), chance level is expected."""

from __future__ import annotations

_MARGIN = 1.5  # top-1 within 1.5x of chance (15 % on 10 classes) after training counts as collapsed
_MIN_EPOCHS = 3


def collapse_warning(top1: float | None, num_classes: int, epochs: int) -> str | None:
    """The warning for a model trained ``epochs`` epochs whose top-1 (percent) is at chance level."""
    if top1 is None or num_classes < 2 or epochs < _MIN_EPOCHS:
        return None
    chance = 100.0 / num_classes
    if top1 > _MARGIN * chance:
        return None
    return (f"the trained model is at chance level ({top1:.2f} % top-1 on {num_classes} classes, chance "
            f"{chance:.2f} %): the training collapsed; lower lr, or the weights of the loss terms "
            "(e.g. dkd beta), or lengthen the warm-up, then rerun")
