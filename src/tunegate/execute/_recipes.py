"""Recipes of the built-in classifiers that do not pickle (they hold an encoder session)."""

from __future__ import annotations

from typing import Any

from tunegate.diagnose._attempts import RulesFirstClassifier
from tunegate.execute._base import ModelRecipe, recipe_for, register_recipe
from tunegate.models._encoder import resolve_encoder_path
from tunegate.models._rules import RulesClassifier
from tunegate.models._zeroshot import ZeroShotClassifier

__all__: list[str] = []


def _zero_shot(workflow: Any, instructions: str, temperature: float) -> ZeroShotClassifier:
    return ZeroShotClassifier(workflow, instructions=instructions, temperature=temperature)


@register_recipe(ZeroShotClassifier)
def _zero_shot_recipe(clf: ZeroShotClassifier) -> ModelRecipe | None:
    if clf.encoder.path != resolve_encoder_path(clf.workflow.model):
        return None  # an encoder given by hand: only pickling (or an attached recipe) can tell
    return ModelRecipe(
        _zero_shot,
        (clf.workflow, clf.instructions, clf.temperature),
        describe=clf.version,
    )


@register_recipe(RulesClassifier)
def _rules_recipe(clf: RulesClassifier) -> ModelRecipe:
    return ModelRecipe(RulesClassifier, (list(clf.rules), list(clf.labels)), describe=clf.version)


def _rules_first(rules: ModelRecipe, model: ModelRecipe) -> RulesFirstClassifier:
    return RulesFirstClassifier(rules(), model())


@register_recipe(RulesFirstClassifier)
def _rules_first_recipe(clf: RulesFirstClassifier) -> ModelRecipe:
    return ModelRecipe(
        _rules_first, (recipe_for(clf.rules), recipe_for(clf.model)), describe=clf.version
    )
