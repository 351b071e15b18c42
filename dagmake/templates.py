"""`for_each` and `matrix`: one step definition made into its instances (`compile[src/a.c]`,
`test[python=3.11,mode=debug]`), each a plain `Step` with its own id, paths and bindings
(`${item}`, `${item.stem}`, `${matrix.K}`, `${inputs}`, `${outputs:X}`); variables in `inputs`,
`outputs`, `cwd` and `depends_on` substituted; `depends_on` on a definition made every instance.

Done when the workflow is read: the graph sees only instances. A for_each glob is matched
against the disk then, and the matches are kept with the workflow (`Workflow.globbed`) so a
compiled copy whose matches differ from the disk's is stale.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from dagmake import globs, variables
from dagmake.errors import ConfigError, did_you_mean
from dagmake.model import Location, Step, Value

ITEM_KEYS = ("item", "item.name", "item.stem", "item.dir")


class ForEach(NamedTuple):
    """What a `for_each:` names: a glob (matched every time the workflow is read), a list of
    values, or `${var}` (a list var's items; a text var is a glob)."""

    glob: str | None
    items: tuple[str, ...]
    var: str | None
    location: Location


class Template(NamedTuple):
    for_each: ForEach | None
    matrix: tuple[tuple[str, tuple[str, ...]], ...]  # key -> values, as written


class Expanded(NamedTuple):
    steps: list[Step]
    templates: tuple[tuple[str, tuple[str, ...]], ...]
    globbed: tuple[tuple[str, tuple[str, ...]], ...]
    fixed: tuple[str, ...]


def needed(steps: Sequence[Step], templates: Sequence[Template | None]) -> bool:
    """Does any step need `expand` (a template, or a reference where only it substitutes)?"""
    if any(t is not None for t in templates):
        return True
    for s in steps:
        if any("${" in p for p in (*s.inputs, *s.outputs, *s.depends_on, s.cwd, s.depfile)):
            return True
        run = s.run
        if "${" in run and any(w in run for w in ("item", "matrix.", "inputs", "outputs")):
            return True
    return False


def expand(
    steps: Sequence[Step],
    templates: Sequence[Template | None],
    root: Path,
    wvars: Sequence[tuple[str, Value]],
    where: Callable[[int], str],
    check_path: Callable[[str, str, bool], str],
    vars_where: str,
) -> Expanded:
    """The instances of every definition, in file order. `where(i)` is `file:line: steps[i]`
    for messages; `check_path(value, where, glob_ok)` validates a substituted path as the
    reader validates a written one (and returns it normalized); `vars_where` names `vars:`."""
    base = variables.resolve_vars(wvars, {}, vars_where)
    fixed: set[str] = set()
    globbed: list[tuple[str, tuple[str, ...]]] = []
    made: list[list[Step]] = []
    seen = 0
    for i, (step, template) in enumerate(zip(steps, templates, strict=True)):
        at = where(i)
        instances = _instances(step, template, root, base, at, fixed, globbed)
        _check_item_refs(step, template, at)
        watch = tuple(g for g, _ in globbed[seen:])
        seen = len(globbed)
        made.append([
            _instance(step, template, suffix, b, base, at, fixed, check_path, watch)
            for suffix, b in instances
        ])  # fmt: skip
    # ids: a definition's name stands for its instances
    groups: dict[str, tuple[str, ...]] = {}
    known: dict[str, Location] = {}
    for i, (step, template, group) in enumerate(zip(steps, templates, made, strict=True)):
        for inst in group:
            if inst.id in known:
                raise ConfigError(
                    f"{where(i)}: step id '{inst.id}' is made twice (first at line "
                    f"{known[inst.id].line}); give the items distinct values"
                )
            known[inst.id] = inst.location
        if template is not None:
            first = next((s for s in steps[:i] if s.id == step.id), None)
            if first is not None:
                raise ConfigError(
                    f"{step.location}: duplicate step id '{step.id}' "
                    f"(first defined at line {first.location.line})"
                )
            groups[step.id] = tuple(s.id for s in group)
    for step, template in zip(steps, templates, strict=True):
        if template is None and step.id in groups:
            first = next(s for s in steps if s.id == step.id)
            raise ConfigError(
                f"{step.location}: duplicate step id '{step.id}' "
                f"(first defined at line {first.location.line})"
            )
    outputs_of = {s.id: _out(s) for group in made for s in group}
    for sid, ids in groups.items():
        outputs_of[sid] = tuple(o for x in ids for o in outputs_of[x])
    final: list[Step] = []
    for i, group in enumerate(made):
        for inst in group:
            final.append(_link(inst, groups, known, outputs_of, where(i)))
    return Expanded(final, tuple(groups.items()), tuple(globbed), tuple(sorted(fixed)))


def _out(step: Step) -> tuple[str, ...]:
    return tuple(o for o in step.outputs if not o.startswith("!"))


def _instances(
    step: Step,
    template: Template | None,
    root: Path,
    base: Mapping[str, Value],
    at: str,
    fixed: set[str],
    globbed: list[tuple[str, tuple[str, ...]]],
) -> list[tuple[str, dict[str, Value]]]:
    """Each instance's id suffix (`src/a.c`, `python=3.11,mode=debug`) and its bindings."""
    if template is None:
        return [("", {})]
    items: list[str | None] = [None]
    fe = template.for_each
    if fe is not None:
        where = f"{fe.location}: {at.split(': ', 1)[1]}.for_each"
        pattern = fe.glob
        values: tuple[str, ...] = fe.items
        if fe.var is not None:
            if fe.var not in base:
                raise ConfigError(
                    f"{where}: unknown variable '{fe.var}'{did_you_mean(fe.var, base)} "
                    "(for_each reads vars:)"
                )
            fixed.add(fe.var)
            value = base[fe.var]
            if isinstance(value, tuple):
                values = value
            else:
                pattern = value
        if pattern is not None:
            for ref in variables.references(pattern, where):
                fixed.add(ref.name)
            pattern = variables.substitute(pattern, base, quote=False, where=where)
            matched = tuple(globs.expand([pattern], root))
            if not matched and not globs.is_glob(pattern):
                raise ConfigError(
                    f"{where}: '{pattern}' is no glob and no file; to give values, write a "
                    f"list: [{', '.join(pattern.split()) or '...'}]"
                )
            globbed.append((pattern, matched))
            values = matched
        items = list(values)
    combos: list[tuple[tuple[str, str], ...]] = [()]
    if template.matrix:
        keys = [k for k, _ in template.matrix]
        combos = [
            tuple(zip(keys, vs, strict=True))
            for vs in itertools.product(*(v for _, v in template.matrix))
        ]
    out: list[tuple[str, dict[str, Value]]] = []
    for item in items:
        for combo in combos:
            bindings: dict[str, Value] = {}
            parts: list[str] = []
            if item is not None:
                bindings.update(item_bindings(item))
                parts.append(item)
            for k, v in combo:
                bindings[f"matrix.{k}"] = v
                parts.append(f"{k}={v}")
            out.append((",".join(parts), bindings))
    return out


def item_bindings(item: str) -> dict[str, Value]:
    """`${item}` and its parts: `src/lib/a.tar.gz` -> name `a.tar.gz`, stem `a.tar`, dir
    `src/lib` (`.` at the root)."""
    folder, _, name = item.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return {"item": item, "item.name": name, "item.stem": stem, "item.dir": folder or "."}


def _check_item_refs(step: Step, template: Template | None, at: str) -> None:
    """`${item...}` and `${matrix.K}` must name what this step's template gives."""
    texts = [
        ("run", step.run), *(("inputs", p) for p in step.inputs),
        *(("outputs", p) for p in step.outputs), ("cwd", step.cwd), ("depfile", step.depfile),
        *(("depends_on", d) for d in step.depends_on), *(("env", v) for _, v in step.env),
        ("if", step.condition or ""), ("description", step.description),
    ]  # fmt: skip
    keys = [k for k, _ in template.matrix] if template is not None else []
    has_item = template is not None and template.for_each is not None
    for key, text in texts:
        if "${" not in text:
            continue
        for ref in variables.references(text, f"{at}.{key}"):
            name = ref.name
            if name == "item" or name.startswith("item."):
                if not has_item:
                    raise ConfigError(
                        f"{at}.{key}: {ref.text} is only known in a step with for_each: "
                        "(add one, or use a variable)"
                    )
                if name not in ITEM_KEYS:
                    raise ConfigError(
                        f"{at}.{key}: unknown {ref.text}{did_you_mean(name, ITEM_KEYS)} "
                        f"(an item has: {', '.join('${' + k + '}' for k in ITEM_KEYS)})"
                    )
            elif name.startswith("matrix."):
                k = name[7:]
                if template is None or not template.matrix:
                    raise ConfigError(
                        f"{at}.{key}: {ref.text} is only known in a step with matrix: "
                        "(add one, or use a variable)"
                    )
                if k not in keys:
                    raise ConfigError(
                        f"{at}.{key}: unknown matrix key '{k}' in {ref.text}"
                        f"{did_you_mean(k, keys)} (the matrix has: {', '.join(keys)})"
                    )


def _instance(
    step: Step,
    template: Template | None,
    suffix: str,
    bindings: dict[str, Value],
    base: Mapping[str, Value],
    at: str,
    fixed: set[str],
    check_path: Callable[[str, str, bool], str],
    watch: tuple[str, ...],
) -> Step:
    """The step with this instance's bindings in its paths, cwd and depends_on (`run`, `env`
    and `if` read them from its scope when planned)."""
    scope = {**base, **bindings}
    # in a path, an item's `*`, `?` and `[` are its own characters, not wildcards
    path_scope = {
        **scope,
        **{
            k: globs.escape(v)
            for k, v in bindings.items()
            if k.startswith("item") and isinstance(v, str)
        },
    }

    def sub(text: str, key: str, path: bool, glob_ok: bool = True) -> str:
        if "${" not in text:
            return text
        w = f"{at}.{key}"
        for ref in variables.references(text, w):
            if ref.step is not None:
                raise ConfigError(
                    f"{w}: {ref.text}: values from other steps can be used in run and if, "
                    f"not in {key.split('[')[0]}"
                )
            if ref.name.startswith("outputs:"):
                if key.startswith("inputs[") and ref.text == text.strip():
                    return ref.text  # a whole entry: `_link` puts every output there
                raise ConfigError(f"{w}: '{text}': ${{outputs:X}} must be a whole inputs entry")
            if ref.name not in bindings:
                fixed.add(ref.name)
        out = variables.substitute(text, path_scope if path else scope, quote=False, where=w)
        return check_path(out, w, glob_ok) if path else out

    new_id = f"{step.id}[{suffix}]" if template is not None else step.id
    inputs = _dedup(sub(p, f"inputs[{j}]", True) for j, p in enumerate(step.inputs))
    outputs = _dedup(sub(p, f"outputs[{j}]", True) for j, p in enumerate(step.outputs))
    cwd = sub(step.cwd, "cwd", True, False) if step.cwd else ""
    depfile = sub(step.depfile, "depfile", True, False) if step.depfile else ""
    deps = tuple(sub(d, f"depends_on[{j}]", False) for j, d in enumerate(step.depends_on))
    description = step.description
    if bindings and "${" in description:
        description = variables.substitute(
            description, scope, quote=False, where=f"{at}.description"
        )
    return step._replace(
        description=description,
        id=new_id,
        inputs=inputs,
        outputs=outputs,
        cwd="" if cwd == "." else cwd,
        depfile=depfile,
        depends_on=deps,
        template=step.id if template is not None else "",
        bindings=tuple(bindings.items()),
        watch=watch,
    )


def _dedup(paths: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(paths))


def _link(
    inst: Step,
    groups: Mapping[str, tuple[str, ...]],
    known: Mapping[str, Location],
    outputs_of: Mapping[str, tuple[str, ...]],
    at: str,
) -> Step:
    """`depends_on` a definition made every instance; `${outputs:X}` in inputs and `run`
    replaced; `${inputs}`, `${outputs}` bound."""

    def outs(sid: str, where: str) -> tuple[str, ...]:
        if sid in outputs_of:
            return outputs_of[sid]
        ids = [*groups, *known]
        raise ConfigError(
            f"{where}: ${{outputs:{sid}}}: unknown step '{sid}'{did_you_mean(sid, ids)}"
        )

    deps: list[str] = []
    locs: list[Location] = []
    for j, dep in enumerate(inst.depends_on):
        loc = inst.depends_on_locations[j] if j < len(inst.depends_on_locations) else inst.location
        targets = groups.get(dep)
        if targets is None:
            if dep not in known:
                raise ConfigError(
                    f"{loc}: {at.split(': ', 1)[1]}.depends_on: unknown step '{dep}'"
                    f"{did_you_mean(dep, [*groups, *known])}"
                )
            targets = (dep,)
        for t in targets:
            if t == inst.id or (inst.template and dep == inst.template):
                raise ConfigError(
                    f"{loc}: {at.split(': ', 1)[1]}.depends_on: '{dep}' depends on itself"
                )
            if t not in deps:
                deps.append(t)
                locs.append(loc)
    inputs: list[str] = []
    for j, p in enumerate(inst.inputs):
        if p.startswith("${outputs:") and p.endswith("}"):  # kept whole by `_instance`
            found = outs(p[10:-1].strip(), f"{at}.inputs[{j}]")
            inputs.extend(x for x in found if x not in inputs)
        elif p not in inputs:
            inputs.append(p)
    bindings = dict(inst.bindings)
    run = inst.run
    if "${" in run:
        for ref in variables.references(run, f"{at}.run"):
            if ref.name.startswith("outputs:"):
                bindings[ref.name] = outs(ref.name[8:], f"{at}.run")
            elif ref.name == "inputs":
                bindings["inputs"] = tuple(p for p in inputs if not p.startswith("!"))
            elif ref.name == "outputs":
                bindings["outputs"] = tuple(p for p in inst.outputs if not p.startswith("!"))
    return inst._replace(
        depends_on=tuple(deps),
        depends_on_locations=tuple(locs),
        inputs=tuple(inputs),
        bindings=tuple(bindings.items()),
    )
