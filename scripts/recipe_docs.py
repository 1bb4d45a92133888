"""Write docs/recipes.md, the reference of every recipe key, from the recipe's JSON Schema.

    .venv/bin/python scripts/recipe_docs.py            # (re)write docs/recipes.md
    .venv/bin/python scripts/recipe_docs.py --check    # exit 1 if docs/recipes.md is not current

The source is ``distillcli.recipe.recipe_schema()`` (what ``distill schema`` prints) plus the
``auto:`` section of ``distill auto`` recipes. Each object in the schema becomes one section with
a table (key, type, default, description); ``$ref``/``$defs`` are resolved into links between
sections. Defaults that pydantic computes with a factory (lists, nested sections) are not in
the schema; they are read from the same pydantic models so the table shows them too.
The output depends only on the schema, so it is the same on every machine.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "recipes.md"
COMMAND = ".venv/bin/python scripts/recipe_docs.py"

_NO_DEFAULT = object()


# ---------------------------------------------------------------- the schemas
def _factory_generator() -> type:
    """A pydantic schema generator that also writes defaults made by a default_factory."""
    from pydantic.json_schema import GenerateJsonSchema

    class WithFactoryDefaults(GenerateJsonSchema):
        def get_default_value(self, schema: Any) -> Any:
            factory = schema.get("default_factory")
            if factory is not None and not schema.get("default_factory_takes_data"):
                return factory()
            return super().get_default_value(schema)

    return WithFactoryDefaults


def _fill_defaults(target: dict[str, Any], source: dict[str, Any]) -> None:
    """Copy ``default`` into every property of ``target`` that lacks one, from the matching
    property of ``source`` (the same schema, generated with factory defaults)."""
    def fill(obj: dict[str, Any], ref: dict[str, Any]) -> None:
        for key, prop in obj.get("properties", {}).items():
            other = ref.get("properties", {}).get(key)
            if isinstance(other, dict) and "default" not in prop and "default" in other:
                prop["default"] = other["default"]

    fill(target, source)
    for name, obj in target.get("$defs", {}).items():
        fill(obj, source.get("$defs", {}).get(name, {}))


def schemas() -> list[tuple[str, dict[str, Any]]]:
    """[(title, JSON Schema)]: the recipe, then the ``auto:`` section of search recipes."""
    from distillcli import recipe as recipe_module

    recipe = recipe_module.recipe_schema()
    if hasattr(recipe_module, "recipe_model"):  # defaults made by factories, from the same models
        full = recipe_module.recipe_model().model_json_schema(by_alias=True, schema_generator=_factory_generator())
        _fill_defaults(recipe, full)
    out = [("recipe", recipe)]
    try:
        from distillcli.auto.config import AutoConfig
    except ImportError:  # the search's options moved: document the recipe alone
        return out
    out.append(("auto", AutoConfig.model_json_schema(by_alias=True, schema_generator=_factory_generator())))
    return out


# ---------------------------------------------------------------- rendering values
def _num(x: Any) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e6:
        return str(int(x)) if abs(x) >= 1 or x == 0 else repr(x)
    if isinstance(x, float):
        return format(x, "g")
    return str(x)


def _flow(value: Any) -> str:
    """A value as YAML flow text: [1, 64], {kd: {}}, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _num(value)
    if isinstance(value, str):
        plain = value and all(c.isalnum() or c in "._-/:$~" for c in value) and value not in ("null", "true", "false")
        return value if plain else json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(text.replace("|", "\\|").split())


def _code(value: Any) -> str:
    return f"`{_flow(value)}`"


# ---------------------------------------------------------------- the document
class Doc:
    def __init__(self, schema: dict[str, Any], prefix: str) -> None:
        self.schema = schema
        self.defs: dict[str, dict[str, Any]] = schema.get("$defs", {})
        self.prefix = prefix
        self.titles: dict[str, str] = {}  # def name -> the section title (paths that reach it)
        self.order: list[str] = []       # def names, in the order first reached

    # -- resolving
    @staticmethod
    def ref_name(ref: str) -> str:
        return ref.rsplit("/", 1)[-1]

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = self.defs[self.ref_name(node["$ref"])]
        return node

    def step_wrapper(self, name: str) -> tuple[str, str] | None:
        """A step entry is {kind: options}: (kind, options' def name), else None."""
        node = self.defs.get(name, {})
        props = node.get("properties", {})
        if len(props) == 1 and node.get("required") == list(props):
            (kind, prop), = props.items()
            if "$ref" in prop:
                return kind, self.ref_name(prop["$ref"])
        return None

    def anchor(self, name: str) -> str:
        return f"{self.prefix}-{name}".lower()

    # -- walking: every object reachable from the root, with the paths that reach it
    def refs_in(self, node: Any) -> list[str]:
        """Def names referenced by ``node`` (a property schema), in order."""
        out: list[str] = []
        if isinstance(node, dict):
            if "$ref" in node:
                out.append(self.ref_name(node["$ref"]))
            for key in ("anyOf", "oneOf", "allOf"):
                for sub in node.get(key, []):
                    out += self.refs_in(sub)
            for key in ("items", "additionalProperties"):
                out += self.refs_in(node.get(key))
        return out

    def walk(self, name: str, path: str) -> None:
        wrapped = self.step_wrapper(name)
        if wrapped:  # steps[]: {distill: {...}} -> the options are the section
            kind, name = wrapped
            path = f"{path[:-len('[]')]}[].{kind}" if path.endswith("[]") else f"{path}.{kind}"
        if not self.is_section(name):
            return
        if name in self.titles:
            if path not in self.titles[name].split(", "):
                self.titles[name] += f", {path}"
            return
        self.titles[name] = path
        self.order.append(name)
        self.walk_props(self.defs[name], path)

    def walk_props(self, node: dict[str, Any], path: str) -> None:
        for key, prop in node.get("properties", {}).items():
            is_list = prop.get("type") == "array" or any(s.get("type") == "array" for s in prop.get("anyOf", []))
            sub = f"{path}.{key}" if path else key
            for ref in self.refs_in(prop):
                self.walk(ref, sub + ("[]" if is_list else ""))

    # -- rendering a property
    def is_section(self, name: str) -> bool:
        """Objects with keys get a section of their own; other definitions (enums) are inlined."""
        return "properties" in self.defs.get(name, {})

    def type_of(self, node: dict[str, Any]) -> str:
        if len(node.get("allOf", [])) == 1:
            return self.type_of(node["allOf"][0])
        if "$ref" in node and not self.is_section(self.ref_name(node["$ref"])):
            return self.type_of(self.defs[self.ref_name(node["$ref"])])
        if "$ref" in node:
            name = self.ref_name(node["$ref"])
            wrapped = self.step_wrapper(name)
            if wrapped:
                return f"[{wrapped[0]}](#{self.anchor(wrapped[1])})"
            return f"mapping ([keys](#{self.anchor(name)}))"
        for key in ("anyOf", "oneOf"):
            if key in node:
                parts = [self.type_of(s) for s in node[key]]
                if key == "oneOf" and all("$ref" in s for s in node[key]):
                    return "one of: " + ", ".join(parts)
                nulls = [p for p in parts if p == "null"]
                return " or ".join([p for p in parts if p != "null"] + nulls)
        if "const" in node:
            return f"`{_flow(node['const'])}`"
        if "enum" in node:
            return " | ".join(f"`{_flow(v)}`" for v in node["enum"])
        kind = node.get("type")
        if kind == "array":
            items = node.get("items", {})
            return f"list of {self.type_of(items)}" if items else "list"
        if kind == "object":
            extra = node.get("additionalProperties")
            if isinstance(extra, dict) and extra:
                return f"mapping of name to {self.type_of(extra)}"
            return "mapping"
        if kind in ("integer", "number"):
            return kind + self.bounds(node)
        if kind == "null":
            return "null"
        return kind or "any"

    @staticmethod
    def bounds(node: dict[str, Any]) -> str:
        lo, hi = node.get("minimum"), node.get("maximum")
        xlo, xhi = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
        if lo is not None and hi is not None:
            return f" {_num(lo)}..{_num(hi)}"
        parts = []
        if lo is not None:
            parts.append(f"≥ {_num(lo)}")
        if xlo is not None:
            parts.append(f"> {_num(xlo)}")
        if hi is not None:
            parts.append(f"≤ {_num(hi)}")
        if xhi is not None:
            parts.append(f"< {_num(xhi)}")
        return f" ({', '.join(parts)})" if parts else ""

    def compact(self, value: Any, node: dict[str, Any]) -> Any:
        """Leave out of a default the keys that equal their own defaults ({arch: resnet20}, not
        every key of a model spec)."""
        if isinstance(value, list):
            items = node.get("items")
            if isinstance(items, dict):
                return [self.compact(v, items) for v in value]
            return value
        if not isinstance(value, dict):
            return value
        target = None
        for option in [node] + node.get("anyOf", []):
            if "$ref" in option:
                target = self.resolve(option)
                break
        if target is None:
            return value
        props = target.get("properties", {})
        out = {}
        for key, val in value.items():
            prop = props.get(key, {})
            if "default" in prop and prop["default"] == val:
                continue
            out[key] = self.compact(val, prop)
        return out

    def default_of(self, key: str, prop: dict[str, Any], required: set[str]) -> str:
        if key in required:
            return "required"
        if "default" not in prop:
            if "$ref" in prop:
                return "its section's defaults"
            return "–"
        value = self.compact(prop["default"], prop)
        if isinstance(value, dict) and not value and "$ref" in prop:
            return "its section's defaults"
        return _code(value)

    def table(self, node: dict[str, Any]) -> list[str]:
        required = set(node.get("required", []))
        lines = ["| key | type | default | description |", "|---|---|---|---|"]
        for key, prop in node.get("properties", {}).items():
            desc = prop.get("description", "")
            refs = self.refs_in(prop)
            if not desc and refs and prop.get("type") != "array":
                desc = self.defs[refs[0]].get("description", "")
            lines.append(f"| `{key}` | {_cell(self.type_of(prop))} | {_cell(self.default_of(key, prop, required))} "
                         f"| {_cell(desc)} |")
        return lines


def _section(doc: Doc, title: str, node: dict[str, Any], anchor: str, level: str = "###") -> list[str]:
    out = [f'<a id="{anchor}"></a>', "", f"{level} `{title}`", ""]
    if node.get("description"):
        out += [" ".join(node["description"].split()), ""]
    return out + doc.table(node) + [""]


def render() -> str:
    lines = [
        "# Recipe reference",
        "",
        f"<!-- Generated by scripts/recipe_docs.py from the recipe's JSON Schema; do not edit by hand. "
        f"Regenerate: {COMMAND} (CI checks it with --check). -->",
        "",
        "Every key a recipe takes, generated from the JSON Schema that `distill schema` prints.",
        "A recipe is a YAML mapping: the top-level keys below, then `steps:`, a list whose items each",
        "have one key, the step's name (`- distill: {epochs: 30}`). A key left out takes its default.",
        "`distill validate RECIPE` checks a recipe; `--set a.b.c=value` overrides any key on the command line",
        "(`--set steps.0.epochs=1` reaches into the first step). A path such as `steps[].prune.finetune`",
        "is where the section sits in a recipe. Ranges are inclusive (`1..1024`) unless written `>` or `<`.",
        "",
    ]
    docs = [(title, Doc(schema, title)) for title, schema in schemas()]
    for title, doc in docs:
        doc.walk_props(doc.schema, "")
    lines += ["Contents:", ""]
    for title, doc in docs:
        if title == "recipe":
            lines.append(f"- [top level](#{doc.anchor('root')})")
        else:
            lines.append(f"- [`{title}:` (search recipes for `distill auto`)](#{doc.anchor('root')})")
        for name in doc.order:
            label = doc.titles[name] if title == "recipe" else f"{title}.{doc.titles[name]}"
            lines.append(f"  - [`{label}`](#{doc.anchor(name)})")
    lines.append("")
    for title, doc in docs:
        if title == "recipe":
            lines += [f'<a id="{doc.anchor("root")}"></a>', "", "## Top level", ""]
        else:
            lines += [f'<a id="{doc.anchor("root")}"></a>', "", f"## `{title}:`", "",
                      "A recipe run with `distill auto` has an `auto:` section beside `name`, `seed`, `device`, "
                      "`threads`, `data` and `teacher` (the model the search starts from). The rest of such a",
                      "recipe is the plain recipe every trial extends.", ""]
        lines += doc.table(doc.schema) + [""]
        for name in doc.order:
            label = doc.titles[name] if title == "recipe" else f"{title}.{doc.titles[name]}"
            lines += _section(doc, label, doc.defs[name], doc.anchor(name))
    return "\n".join(lines).rstrip("\n") + "\n"


def check(path: Path = DOC) -> tuple[bool, str]:
    """(is ``path`` current, a diff or message when it is not)."""
    want = render()
    have = path.read_text(encoding="utf-8") if path.is_file() else ""
    if have == want:
        return True, ""
    diff = "".join(difflib.unified_diff(have.splitlines(True), want.splitlines(True),
                                        str(path), "generated", n=1))
    return False, f"{path} is out of date with the recipe schema; regenerate it: {COMMAND}\n{diff}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file differs from what would be written")
    parser.add_argument("--out", type=Path, default=DOC, help=f"the file (default: {DOC.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    if args.check:
        ok, message = check(args.out)
        if not ok:
            print(message, file=sys.stderr)
            return 1
        print(f"{args.out}: current")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.path.append(str(ROOT))  # distillcli from the checkout when it is not installed
    sys.exit(main())
