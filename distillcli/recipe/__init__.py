"""The recipe: YAML -> typed, validated objects, with --set overrides and a JSON Schema.

Every problem is reported at once, each with its key path (and line, from a file), the offending
value and, for a misspelt key, the closest valid one: ``line 12: steps[1].distill.temprature:
unknown key; did you mean 'temperature'?``. ``model`` holds the typed recipe, ``yaml_file`` the
YAML reading and overrides, ``checks`` / ``file_checks`` the cross-field and file checks,
``problems`` the wording, ``load`` the entry points below (fetched on first use).
"""

from distillcli.lazy import lazy_exports

_WHERE = {
    **dict.fromkeys(("CheckpointConfig", "ModelSpec", "RecipeBase", "ReportConfig", "TeacherSpec", "recipe_model"),
                    "model"),
    **dict.fromkeys(("anchor_paths", "load_recipe", "read_recipe", "recipe_schema", "recipe_to_dict", "validate_file",
                     "validate_raw"), "load"),
    **dict.fromkeys(("apply_override", "normalise_steps", "read_yaml"), "yaml_file"),
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_exports(__name__, _WHERE)
