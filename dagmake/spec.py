"""Reads a workflow file into a validated `Workflow`: the only module that knows YAML.

Works on a node tree (not constructed Python objects) so that every value keeps its line number
and its source text: `on: no` stays the string "no" and `1.10` stays "1.10" (RELIABILITY 15).
Duplicate and unknown keys are errors with a did-you-mean; `<<` merges work.

The tree is composed here from the C parser's events into small slotted nodes rather than by
PyYAML's composer, whose nodes carry two position objects each: for 5,000 steps that is 32 MB
at the peak instead of about 10.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from dagmake import conditions, templates, units, variables
from dagmake.errors import ConfigError, did_you_mean
from dagmake.locations import read_workflow_bytes
from dagmake.model import DEFAULT_TIMEOUT_S, CacheSettings, Location, Step, Value, Workflow
from dagmake.templates import ForEach, Template

TOP_KEYS = ("name", "description", "vars", "env", "defaults", "cache", "steps")
STEP_KEYS = (
    "id",
    "run",
    "description",
    "depends_on",
    "inputs",
    "outputs",
    "timeout",
    "retries",
    "env",
    "cwd",
    "if",
    "cache",
    "for_each",
    "matrix",
    "depfile",
    "tools",
    "pass_env",
    "where",
    "resources",
)
RESOURCES = ("cpus", "memory", "gpus")  # `resources:`; memory is a size (4GB), the rest counts
DEFAULT_KEYS = ("timeout", "retries", "env", "cwd", "cache", "tools", "pass_env")
CACHE_KEYS = ("max_size", "max_age")
MAX_NODES = 2_000_000  # an alias bomb expands past this long before memory runs out
MAX_DEPTH = 200  # values nested deeper than this are no workflow (and would meet Python's stack)
MAX_ID_LENGTH = 200  # a step id names files (`<id>.log`, their temp names): under NAME_MAX

_ID = re.compile(r"[A-Za-z0-9_.-]+\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TOOL = re.compile(r"[A-Za-z0-9_.+-]+\Z")  # a command name, looked up on PATH
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_MERGE = "tag:yaml.org,2002:merge"


class _Node:
    __slots__ = ("line", "tag", "value")

    def __init__(self, tag: str, value: Any, line: int) -> None:
        self.tag = tag
        self.value = value  # str; list of nodes; list of (key, value) node pairs
        self.line = line  # 1-based


class _Scalar(_Node):
    __slots__ = ()


class _Sequence(_Node):
    __slots__ = ()


class _Mapping(_Node):
    __slots__ = ()


Node = Any  # a _Node, or None for an empty document


def load_workflow(path: Path, *, data: bytes | None = None) -> Workflow:
    """Parse and validate `path` (whose bytes may be given). Every problem is a ConfigError
    naming `file:line`."""
    shown = str(path)
    text = read_workflow_bytes(path) if data is None else data
    root = path.absolute().parent.resolve()
    return _Reader(shown, path.stem).workflow(_compose(text, shown), root, path)


def _compose(text: bytes, shown: str) -> Node:
    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        loader = loader_cls(text)
        try:
            return _Composer(loader).document()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        raise _syntax_error(e, text, shown) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{shown}: invalid YAML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: the file is not UTF-8 text") from None


def _syntax_error(e: yaml.MarkedYAMLError, text: bytes, shown: str) -> ConfigError:
    """`file:line:column: invalid YAML: ...` at the start of the broken construct (an
    unclosed quote or bracket is named where it opens, not at the end of the file), never past
    the file's last line, with a hint for tabs and for an unquoted ': '."""
    lines = text.decode("utf-8", "replace").rstrip().split("\n")
    context, problem = e.context or "", e.problem or ""

    def clamp(line: int, col: int) -> tuple[int, int]:  # 0-based in, 0-based out
        if line >= len(lines):
            return len(lines) - 1, len(lines[-1])
        return line, min(col, len(lines[line]))

    marks = [m for m in (e.problem_mark, e.context_mark) if m is not None]
    problem_at = clamp(marks[0].line, marks[0].column) if marks else (0, 0)
    at_end = not marks or marks[0].line >= len(lines) or "end of stream" in problem
    hint = ""
    what = " ".join(p for p in (context, problem) if p)
    where = problem_at
    if "quoted scalar" in context and e.context_mark is not None and "end of stream" in problem:
        where = clamp(e.context_mark.line, e.context_mark.column)
        quote = lines[where[0]][where[1] : where[1] + 1] or "quote"
        what = f"the quoted value that starts here is never closed (add the closing {quote})"
    elif "flow" in context and (opener := _unclosed_bracket(lines)) is not None:
        where = opener
        bracket = lines[opener[0]][opener[1]]
        close = "]" if bracket == "[" else "}"
        found = (
            "by the end of the file"
            if at_end
            else f"before line {problem_at[0] + 1}, column {problem_at[1] + 1}"
        )
        what = f"the '{bracket}' here is never closed (expected ',' or '{close}' {found})"
    else:
        line_text = lines[where[0]]
        if "tab" in problem or "\t" in line_text[: len(line_text) - len(line_text.lstrip())]:
            what = problem or what
            hint = "indent with spaces; YAML does not allow tabs there"
            if "\t" in line_text:
                where = (where[0], line_text.index("\t"))
        elif "mapping values are not allowed" in problem:
            what = problem
            hint = _quote_hint(line_text)
        elif e.context_mark is not None and e.context_mark.line != where[0] and context:
            construct = re.sub(r"^while (parsing|scanning) (an? )?", "", context)
            what += f" (the {construct} starts at line {e.context_mark.line + 1})"
    if hint:
        what += f" (hint: {hint})"
    return ConfigError(f"{shown}:{where[0] + 1}:{where[1] + 1}: invalid YAML: {what}")


def _unclosed_bracket(lines: list[str]) -> tuple[int, int] | None:
    """Where the last '[' or '{' that is never closed opens (0-based line, column): a rough
    scan that skips quoted text and comments, for naming the opener in an error message."""
    stack: list[tuple[int, int]] = []
    for n, line in enumerate(lines):
        quote = ""
        for i, ch in enumerate(line):
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in "'\"" and (i == 0 or line[i - 1] in " \t[{,:"):
                quote = ch
            elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
                break
            elif ch in "[{":
                stack.append((n, i))
            elif ch in "]}" and stack:
                stack.pop()
    return stack[-1] if stack else None


def _quote_hint(line: str) -> str:
    """`run: "echo a: b"` for the line `run: echo a: b`."""
    m = re.match(r"\s*(?:-\s+)?([^\s:'\"#][^:#]*?):\s+(.+?)\s*$", line)
    if m is None:
        return 'a value holding ": " must be quoted'
    key, value = m.groups()
    if '"' not in value and "\\" not in value:
        quoted = f'"{value}"'
    elif "'" not in value:
        quoted = f"'{value}'"
    else:
        quoted = "'" + value.replace("'", "''") + "'"
    return f'a value holding ": " must be quoted: {key}: {quoted}'


class _Composer:
    """PyYAML's composition rules (one document; anchors, aliases, tag resolution) over the
    parser's events, building `_Node`s."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.anchors: dict[str, _Node] = {}

    def document(self) -> _Node | None:
        events = self.loader
        events.get_event()  # stream start
        if events.check_event(yaml.StreamEndEvent):
            return None
        events.get_event()  # document start
        node = self.node(0)
        events.get_event()  # document end
        if not events.check_event(yaml.StreamEndEvent):
            extra = events.get_event()
            raise yaml.composer.ComposerError(
                "expected a single document in the stream",
                None,
                "but found another document",
                extra.start_mark,
            )
        return node

    def node(self, depth: int) -> _Node:
        event = self.loader.get_event()
        mark: Any = event.start_mark  # the C parser's own Mark class
        if depth > MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"values nested more than {MAX_DEPTH} levels deep", mark
            )
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in self.anchors:
                raise yaml.composer.ComposerError(
                    None, None, f"found undefined alias {event.anchor!r}", mark
                )
            return self.anchors[event.anchor]
        anchor = event.anchor
        if anchor is not None and anchor in self.anchors:
            first = self.anchors[anchor].line
            raise yaml.composer.ComposerError(
                None, None, f"anchor {anchor!r} is defined twice (first on line {first})", mark
            )
        line = mark.line + 1
        node: _Node
        if isinstance(event, yaml.ScalarEvent):
            node = _Scalar(self.tag(event, yaml.ScalarNode, event.value), event.value, line)
        elif isinstance(event, yaml.SequenceStartEvent):
            node = _Sequence(self.tag(event, yaml.SequenceNode), [], line)
        else:
            node = _Mapping(self.tag(event, yaml.MappingNode), [], line)
        if anchor is not None:
            self.anchors[anchor] = node  # before the children: an alias inside may name it
        if isinstance(node, _Sequence):
            while not self.loader.check_event(yaml.SequenceEndEvent):
                node.value.append(self.node(depth + 1))
            self.loader.get_event()
        elif isinstance(node, _Mapping):
            while not self.loader.check_event(yaml.MappingEndEvent):
                key = self.node(depth + 1)
                node.value.append((key, self.node(depth + 1)))
            self.loader.get_event()
        return node

    def tag(self, event: Any, kind: type, value: str | None = None) -> str:
        """The event's explicit tag, else the one PyYAML's resolver gives (`!!int`, ...)."""
        if event.tag is None or event.tag == "!":
            return str(self.loader.resolve(kind, value, event.implicit))
        return str(event.tag)


class _Reader:
    """Walks the node tree, keeping `where` strings (`file:line: steps[2].inputs[0]`)."""

    def __init__(self, shown: str, stem: str) -> None:
        self.shown = shown
        self.stem = stem
        self.nodes = 0

    # -- positions and errors ---------------------------------------------------------

    def loc(self, node: Node) -> Location:
        return Location(self.shown, node.line)

    def fail(self, node: Node, key: str, problem: str) -> ConfigError:
        prefix = f"{self.loc(node)}: {key}: " if key else f"{self.loc(node)}: "
        return ConfigError(prefix + problem)

    def _count(self, n: int = 1) -> None:
        self.nodes += n
        if self.nodes > MAX_NODES:
            raise ConfigError(
                f"{self.shown}: the file expands to more than {MAX_NODES:,} values "
                "(aliases nested too deeply?)"
            )

    # -- shapes -----------------------------------------------------------------------

    def mapping(
        self, node: Node, key: str, allowed: tuple[str, ...] | None
    ) -> dict[str, tuple[Node, Node]]:
        """key -> (key node, value node); duplicates and (if `allowed`) unknown keys fail."""
        if not isinstance(node, _Mapping):
            raise self.fail(node, key, f"expected a mapping (key: value lines), got {_kind(node)}")
        out: dict[str, tuple[Node, Node]] = {}
        for k, v in self._pairs(node, key, 0):
            if not isinstance(k, _Scalar):
                raise self.fail(k, key, "keys must be plain names")
            name = k.value
            if name in out:
                first = out[name][0].line
                raise self.fail(k, key, f"duplicate key '{name}' (first given on line {first})")
            if allowed is not None and name not in allowed:
                if name.startswith("x-") and allowed in (TOP_KEYS, STEP_KEYS):
                    continue  # an extension key, for YAML anchors: ignored
                raise self.fail(
                    k,
                    key,
                    f"unknown key '{name}'{did_you_mean(name, allowed)}"
                    f" (allowed: {', '.join(allowed)})",
                )
            out[name] = (k, v)
        return out

    def _pairs(self, node: Node, key: str, depth: int) -> Iterator[tuple[Node, Node]]:
        """The mapping's pairs with `<<` merges applied (explicit keys win, as in YAML 1.1)."""
        if depth > MAX_DEPTH:
            raise self.fail(node, key, f"'<<' merges nested more than {MAX_DEPTH} levels deep")
        own = [(k, v) for k, v in node.value if k.tag != _MERGE]
        seen = {k.value for k, _ in own if isinstance(k, _Scalar)}
        self._count(len(node.value))
        yield from own
        for k, v in node.value:
            if k.tag != _MERGE:
                continue
            sources = v.value if isinstance(v, _Sequence) else [v]
            for src in sources:
                if not isinstance(src, _Mapping):
                    raise self.fail(src, key, "'<<' must merge a mapping (or a list of them)")
                for mk, mv in self._pairs(src, key, depth + 1):
                    if isinstance(mk, _Scalar) and mk.value not in seen:
                        seen.add(mk.value)
                        yield mk, mv

    def sequence(self, node: Node, key: str) -> list[Node]:
        """A list; a single scalar counts as a list of one; null as empty."""
        if isinstance(node, _Scalar):
            return [] if node.tag == _NULL else [node]
        if not isinstance(node, _Sequence):
            raise self.fail(node, key, f"expected a list, got {_kind(node)}")
        self._count(len(node.value))
        return list(node.value)

    def text(self, node: Node, key: str, *, allow_empty: bool = True) -> str:
        """A scalar's source text, whatever YAML would have guessed its type to be."""
        if not isinstance(node, _Scalar):
            raise self.fail(node, key, f"expected text, got {_kind(node)}")
        value = "" if node.tag == _NULL else str(node.value)
        if "\0" in value:  # no path, argument or environment value can hold one
            raise self.fail(node, key, "contains a NUL character (\\0); remove it")
        if not allow_empty and not value.strip():
            raise self.fail(node, key, "must not be empty")
        return value

    def string_map(
        self, node: Node, key: str, name_re: re.Pattern[str], what: str
    ) -> tuple[tuple[str, str], ...]:
        if isinstance(node, _Scalar) and node.tag == _NULL:
            return ()
        pairs = []
        for name, (k, v) in self.mapping(node, key, None).items():
            if not name_re.match(name):
                raise self.fail(k, f"{key}.{name}", f"'{name}' is not a valid {what} name")
            pairs.append((name, self.text(v, f"{key}.{name}")))
        return tuple(pairs)

    def var_map(self, node: Node) -> tuple[tuple[str, Value], ...]:
        """`vars:`: each value text, or a list of texts (separate words in `run`)."""
        if isinstance(node, _Scalar) and node.tag == _NULL:
            return ()
        pairs: list[tuple[str, Value]] = []
        for name, (k, v) in self.mapping(node, "vars", None).items():
            if not _VAR_NAME.match(name):
                raise self.fail(k, f"vars.{name}", f"'{name}' is not a valid variable name")
            if isinstance(v, _Sequence):
                items = self.sequence(v, f"vars.{name}")
                pairs.append(
                    (name, tuple(self.text(x, f"vars.{name}[{j}]") for j, x in enumerate(items)))
                )
            else:
                pairs.append((name, self.text(v, f"vars.{name}")))
        return tuple(pairs)

    def template(self, fields: dict[str, tuple[Node, Node]], key: str) -> Template | None:
        """A step's `for_each:` and `matrix:`, or None for a plain step."""
        if "for_each" not in fields and "matrix" not in fields:
            return None
        for_each = None
        if "for_each" in fields:
            node = fields["for_each"][1]
            where = f"{key}.for_each"
            if isinstance(node, _Sequence):
                items = tuple(
                    self.text(x, f"{where}[{j}]", allow_empty=False).strip()
                    for j, x in enumerate(self.sequence(node, where))
                )
                if not items:
                    raise self.fail(node, where, "the list is empty; give at least one item")
                for_each = ForEach(None, items, None, self.loc(node))
            else:
                text = self.text(node, where, allow_empty=False).strip()
                refs = variables.references(text, f"{self.loc(node)}: {where}")
                if len(refs) == 1 and refs[0].text == text and refs[0].step is None:
                    for_each = ForEach(None, (), refs[0].name, self.loc(node))
                else:
                    pattern = self.path(node, where, glob_ok=True)
                    for_each = ForEach(pattern, (), None, self.loc(node))
        matrix: list[tuple[str, tuple[str, ...]]] = []
        if "matrix" in fields:
            node = fields["matrix"][1]
            where = f"{key}.matrix"
            pairs = self.mapping(node, where, None)
            if not pairs:
                raise self.fail(node, where, "is empty; give each key a list of values")
            for name, (k, v) in pairs.items():
                if not _ID.match(name) or "=" in name:
                    raise self.fail(k, f"{where}.{name}", "a matrix key is a plain name")
                values = tuple(
                    self.text(x, f"{where}.{name}[{j}]", allow_empty=False).strip()
                    for j, x in enumerate(self.sequence(v, f"{where}.{name}"))
                )
                if not values:
                    raise self.fail(v, f"{where}.{name}", "is empty; give it at least one value")
                matrix.append((name, values))
        return Template(for_each, tuple(matrix))

    def checked_path(self, value: str, where: str, glob_ok: bool) -> str:
        """A path after substitution, validated as a written one."""
        node = _Scalar(_STR, value, 0)
        file_line, _, key = where.partition(": ")
        try:
            return self.path(node, "", glob_ok=glob_ok)
        except ConfigError as e:
            problem = str(e).split(": ", 1)[1] if ": " in str(e) else str(e)
            raise ConfigError(f"{file_line}: {key}: {problem}") from None

    def boolean(self, node: Node, key: str) -> bool:
        value = self.text(node, key).strip().lower()
        if node.tag == _BOOL and value in ("true", "false"):
            return value == "true"
        raise self.fail(node, key, f"expected true or false, got '{node.value}'")

    def count(self, node: Node, key: str) -> int:
        value = self.text(node, key).strip()
        if node.tag != _INT or not value.isdigit():
            raise self.fail(node, key, f"expected a whole number 0 or more, got '{node.value}'")
        return int(value)

    def quantity(self, node: Node, key: str, parse: Callable[[str], float]) -> float:
        if node.tag not in (_STR, _INT, _FLOAT):
            raise self.fail(node, key, f"expected a number or text like 90s, got {_kind(node)}")
        try:
            return parse(str(node.value))
        except ValueError as e:
            raise self.fail(node, key, str(e)) from None

    def path(self, node: Node, key: str, *, glob_ok: bool) -> str:
        raw = self.text(node, key, allow_empty=False).strip()
        if glob_ok and raw.startswith("!") and len(raw) > 1:  # an exclusion
            return "!" + self.path(_Scalar(node.tag, raw[1:], node.line), key, glob_ok=True)
        value = raw.replace("\\", "/") if os.sep == "\\" else raw
        while value.startswith("./"):
            value = value[2:]
        value = value.rstrip("/") or "."
        if value.startswith("/") or value.startswith("~"):
            raise self.fail(
                node, key, f"'{raw}' is absolute; paths are relative to the workspace root"
            )
        parts = value.split("/")
        if ".." in parts:
            raise self.fail(
                node,
                key,
                f"'{raw}' leaves the workspace ('..'); paths are relative to the workspace root",
            )
        if "" in parts:
            raise self.fail(node, key, f"'{raw}' has an empty path component")
        if not glob_ok and any(c in value for c in "*?["):
            raise self.fail(node, key, f"'{raw}' may not be a glob")
        return value

    # -- the document -----------------------------------------------------------------

    def workflow(self, doc: Node, root: Path, path: Path) -> Workflow:
        if doc is None or (isinstance(doc, _Scalar) and doc.tag == _NULL):
            raise ConfigError(f"{self.shown}:1: the file is empty; a workflow needs a steps: list")
        top = self.mapping(doc, "", TOP_KEYS)
        if "steps" not in top:
            raise self.fail(doc, "", "missing 'steps:' (the list of steps to run)")
        name = (
            self.text(top["name"][1], "name", allow_empty=False).strip()
            if "name" in top
            else self.stem
        )
        description = (
            self.text(top["description"][1], "description") if "description" in top else ""
        )
        wvars = self.var_map(top["vars"][1]) if "vars" in top else ()
        wenv = (
            self.string_map(top["env"][1], "env", _ENV_NAME, "environment variable")
            if "env" in top
            else ()
        )
        defaults = (
            self.mapping(top["defaults"][1], "defaults", DEFAULT_KEYS) if "defaults" in top else {}
        )
        cache = self.cache_settings(top["cache"][1]) if "cache" in top else CacheSettings()
        steps_node = top["steps"][1]
        items = self.sequence(steps_node, "steps")
        if not items:
            raise self.fail(steps_node, "steps", "the list is empty; add at least one step")
        vars_where = f"{self.loc(top['vars'][0])}: vars" if "vars" in top else f"{self.shown}"
        made = [self.step(item, i, defaults) for i, item in enumerate(items)]
        steps = [s for s, _ in made]
        kinds = [t for _, t in made]
        expanded = None
        if templates.needed(steps, kinds):
            self.check_ids([s for s, t in made if t is None], items, check_deps=False)
            expanded = templates.expand(
                steps,
                kinds,
                root,
                wvars,
                lambda i: f"{steps[i].location}: steps[{i}]",
                self.checked_path,
                vars_where,
            )
            steps = expanded.steps
        else:
            self.check_ids(steps, items)
            variables.resolve_vars(wvars, {}, vars_where)  # a cycle fails now
        return Workflow(
            name=name,
            path=path,
            root=root,
            steps=tuple(steps),
            description=description,
            vars=wvars,
            env=wenv,
            cache=cache,
            templates=expanded.templates if expanded else (),
            globbed=expanded.globbed if expanded else (),
            fixed=expanded.fixed if expanded else (),
        )

    def cache_settings(self, node: Node) -> CacheSettings:
        fields = self.mapping(node, "cache", CACHE_KEYS)
        base = CacheSettings()
        size = base.max_size_bytes
        age = base.max_age_s
        if "max_size" in fields:
            size = int(self.quantity(fields["max_size"][1], "cache.max_size", units.parse_size))
        if "max_age" in fields:
            age = self.quantity(fields["max_age"][1], "cache.max_age", units.parse_age)
        return CacheSettings(max_size_bytes=size, max_age_s=age)

    def step(
        self, node: Node, index: int, defaults: dict[str, tuple[Node, Node]]
    ) -> tuple[Step, Template | None]:
        key = f"steps[{index}]"
        if not isinstance(node, _Mapping):
            raise self.fail(
                node, key, f"expected a step (a mapping with id: and run:), got {_kind(node)}"
            )
        fields = self.mapping(node, key, STEP_KEYS)
        for required in ("id", "run"):
            if required not in fields:
                raise self.fail(node, key, f"missing '{required}:'")
        id_node = fields["id"][1]
        step_id = self.text(id_node, f"{key}.id", allow_empty=False).strip()
        if len(step_id) > MAX_ID_LENGTH:
            raise self.fail(
                id_node,
                f"{key}.id",
                f"is {len(step_id)} characters long; at most {MAX_ID_LENGTH} (it names the "
                "step's files); shorten it",
            )
        if not _ID.match(step_id):
            raise self.fail(
                id_node, f"{key}.id", f"'{step_id}' may only use letters, digits, _ . and -"
            )
        merged = {**defaults, **fields}

        def field(name: str) -> Node | None:
            pair = merged.get(name)
            return None if pair is None else pair[1]

        run_node = fields["run"][1]
        run = self.text(run_node, f"{key}.run", allow_empty=False)
        variables.references(run, f"{self.loc(run_node)}: {key}.run")
        depends: list[str] = []
        depends_locs: list[Location] = []
        if (n := field("depends_on")) is not None:
            for j, d in enumerate(self.sequence(n, f"{key}.depends_on")):
                dep = self.text(d, f"{key}.depends_on[{j}]", allow_empty=False).strip()
                if dep in depends:
                    raise self.fail(d, f"{key}.depends_on[{j}]", f"'{dep}' is listed twice")
                depends.append(dep)
                depends_locs.append(self.loc(d))
        inputs = self.paths(field("inputs"), f"{key}.inputs")
        outputs = self.paths(field("outputs"), f"{key}.outputs")
        timeout = DEFAULT_TIMEOUT_S
        if (n := field("timeout")) is not None:
            timeout = self.quantity(n, f"{key}.timeout", units.parse_duration)
        retries = self.count(n, f"{key}.retries") if (n := field("retries")) is not None else 0
        env_pairs: dict[str, str] = {}
        for source in (defaults.get("env"), fields.get("env")):
            if source is not None:
                env_pairs.update(
                    self.string_map(source[1], f"{key}.env", _ENV_NAME, "environment variable")
                )
        cwd = ""
        if (n := field("cwd")) is not None:
            cwd = self.path(n, f"{key}.cwd", glob_ok=False)
            cwd = "" if cwd == "." else cwd
        condition = None
        if "if" in fields:
            cond_node = fields["if"][1]
            condition = self.text(cond_node, f"{key}.if", allow_empty=False).strip()
            conditions.parse(condition, f"{self.loc(cond_node)}: {key}.if")
        cache = self.boolean(n, f"{key}.cache") if (n := field("cache")) is not None else True
        depfile = ""
        if (n := field("depfile")) is not None:
            depfile = self.path(n, f"{key}.depfile", glob_ok=False)
        tools = self.names(field("tools"), f"{key}.tools", _TOOL, "tool name")
        pass_env = self.names(field("pass_env"), f"{key}.pass_env", _ENV_NAME, "variable name")
        where = ""
        if (n := field("where")) is not None:
            where = self.text(n, f"{key}.where", allow_empty=False).strip()
            if where != "local":
                raise self.fail(
                    n, f"{key}.where", f"'{where}' is not a place; the one there is: local"
                )
        resources = self.resources(field("resources"), f"{key}.resources")
        description = (
            self.text(fields["description"][1], f"{key}.description")
            if "description" in fields
            else ""
        )
        return Step(
            id=step_id,
            run=run,
            location=self.loc(node),
            depends_on=tuple(depends),
            depends_on_locations=tuple(depends_locs),
            inputs=inputs,
            outputs=outputs,
            description=description.strip(),
            timeout_s=timeout,
            retries=retries,
            env=tuple(env_pairs.items()),
            cwd=cwd,
            condition=condition,
            cache=cache,
            depfile=depfile,
            tools=tools,
            pass_env=pass_env,
            where=where,
            resources=resources,
        ), self.template(fields, key)

    def resources(self, node: Node | None, key: str) -> tuple[tuple[str, float], ...]:
        """`resources: {cpus: 2, memory: 4GB, gpus: 1}`: what a Dask worker must offer."""
        if node is None or (isinstance(node, _Scalar) and node.tag == _NULL):
            return ()
        out: list[tuple[str, float]] = []
        for name, (k, v) in self.mapping(node, key, None).items():
            if name not in RESOURCES:
                raise self.fail(
                    k, f"{key}.{name}", f"'{name}' is not a resource; use {', '.join(RESOURCES)}"
                )
            if name == "memory":
                amount = float(self.quantity(v, f"{key}.{name}", units.parse_size))
            else:
                amount = self.quantity(v, f"{key}.{name}", _amount)
            if amount <= 0:
                raise self.fail(v, f"{key}.{name}", "must be more than 0")
            out.append((name, amount))
        return tuple(out)

    def names(
        self, node: Node | None, key: str, pattern: re.Pattern[str], what: str
    ) -> tuple[str, ...]:
        """A list of distinct names (`tools`, `pass_env`), each matching `pattern`."""
        if node is None:
            return ()
        out: list[str] = []
        for j, item in enumerate(self.sequence(node, key)):
            name = self.text(item, f"{key}[{j}]", allow_empty=False).strip()
            if not pattern.match(name):
                raise self.fail(item, f"{key}[{j}]", f"'{name}' is not a {what}")
            if name in out:
                raise self.fail(item, f"{key}[{j}]", f"'{name}' is listed twice")
            out.append(name)
        return tuple(out)

    def paths(self, node: Node | None, key: str) -> tuple[str, ...]:
        if node is None:
            return ()
        out: list[str] = []
        for j, item in enumerate(self.sequence(node, key)):
            p = self.path(item, f"{key}[{j}]", glob_ok=True)
            if p == ".":
                raise self.fail(
                    item,
                    f"{key}[{j}]",
                    "the whole workspace cannot be an input or output; "
                    "name files, folders or globs",
                )
            if p not in out:
                out.append(p)
        return tuple(out)

    def check_ids(self, steps: list[Step], items: list[Node], *, check_deps: bool = True) -> None:
        seen: dict[str, Location] = {}
        for step in steps:
            if step.id in seen:
                raise ConfigError(
                    f"{step.location}: duplicate step id '{step.id}' "
                    f"(first defined at line {seen[step.id].line})"
                )
            seen[step.id] = step.location
        if not check_deps:
            return
        for i, step in enumerate(steps):
            for dep, loc in zip(step.depends_on, step.depends_on_locations, strict=True):
                if dep == step.id:
                    raise ConfigError(f"{loc}: steps[{i}].depends_on: '{dep}' depends on itself")
                if dep not in seen:
                    raise ConfigError(
                        f"{loc}: steps[{i}].depends_on: unknown step '{dep}'"
                        f"{did_you_mean(dep, seen)}"
                    )


def _kind(node: Node) -> str:
    if isinstance(node, _Mapping):
        return "a mapping"
    if isinstance(node, _Sequence):
        return "a list"
    if node.tag == _NULL:
        return "nothing"
    return f"'{node.value}'"


def _amount(text: str) -> float:
    """A count of cpus or gpus: a number (fractions allowed, as Dask's resources are)."""
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, got '{text}'") from None
