"""One small, safe expression language: policy `when` conditions and playbook rules both speak it.

    replicas > 10 and name != "db"          to in ["oncall@example.com"] and cc == []
    min(replicas * 2, 20)                   len(to) > 3          args.priority == "P1"

`parse` builds a checked tree (comparisons, and/or/not, arithmetic, numbers, strings, lists, names,
`args.NAME`, and the functions in FUNCTIONS; nothing else parses). `evaluate` runs a tree over a dict
of names without eval(), and refuses at run time what Python would let slide (`"10" > 3`, `True == 1`,
an unknown name): every failure is an ExpressionError, so a caller can fail closed. `check_types` is a
separate pass over the same tree that infers each node's type from the names' types (see
`types_from_json_schema`) and refuses unknown names, unknown functions and mismatched comparisons
before anything runs.
"""

from __future__ import annotations

import ast
import difflib
import functools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal


class ExpressionError(ValueError):
    """An expression that does not parse, does not type-check, or cannot be evaluated."""


# -- parsing ---------------------------------------------------------------------------------------

_BIN: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_ORDER: dict[type, Callable[[Any, Any], bool]] = {
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Lt: operator.lt, ast.LtE: operator.le}
_EQUALITY = (ast.Eq, ast.NotEq)
_MEMBERSHIP = (ast.In, ast.NotIn)
FUNCTIONS: dict[str, Callable[..., Any]] = {"min": min, "max": max, "round": round, "int": int, "abs": abs,
                                            "len": len}
_ALLOWED = (ast.Expression, ast.Constant, ast.Name, ast.Attribute, ast.List, ast.Tuple, ast.Load, ast.UnaryOp,
            ast.Not, ast.USub, ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.Compare, ast.Call, *_BIN, *_ORDER,
            *_EQUALITY, *_MEMBERSHIP)
ARGS = "args"
"""`args.NAME` is another spelling of NAME (for a name that is also a keyword of the language)."""


@functools.lru_cache(maxsize=1024)
def parse(source: str) -> ast.Expression:
    """The checked tree of `source`; ExpressionError names the construct that is not part of the language."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"{source!r} is not a valid expression: {exc.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(f"{source!r} uses {type(node).__name__}, which is not allowed (only comparisons, "
                                  "and/or/not, arithmetic, names, numbers, strings, lists and "
                                  f"{', '.join(sorted(FUNCTIONS))})")
        if isinstance(node, ast.Constant) and not isinstance(node.value, int | float | str | None):
            raise ExpressionError(f"{source!r}: the constant {node.value!r} is not a number, a string, "
                                  "True, False or None")
        if isinstance(node, ast.Attribute) and not (isinstance(node.value, ast.Name) and node.value.id == ARGS):
            raise ExpressionError(f"{source!r}: attribute access '{ast.unparse(node)}' is not allowed "
                                  f"(only {ARGS}.NAME)")
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            if name not in FUNCTIONS:
                raise ExpressionError(f"{source!r} calls unknown function '{name}' "
                                      f"(known: {', '.join(sorted(FUNCTIONS))})")
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                raise ExpressionError(f"{source!r}: {name}() takes plain arguments only")
    return tree


def name_of(node: ast.AST) -> str | None:
    """The argument a Name or `args.NAME` node refers to; None for any other node."""
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


# -- evaluation ------------------------------------------------------------------------------------


def _family(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    return "object"


def _show(value: Any) -> str:
    return f"{_family(value)} {value!r}"[:80]


def _compare(op: ast.cmpop, left: Any, right: Any) -> bool:
    lf, rf = _family(left), _family(right)
    if isinstance(op, _MEMBERSHIP):
        if rf == "string" and lf == "string":
            found = left in right
        elif rf == "list":
            items = list(left) if lf == "list" else [left]
            found = all(any(_equal(item, r) for r in right) for item in items)
        else:
            raise ExpressionError(f"'in' needs a list or a string on its right, got {_show(right)}")
        return found if isinstance(op, ast.In) else not found
    if isinstance(op, _EQUALITY):
        same = _equal(left, right)
        return same if isinstance(op, ast.Eq) else not same
    if lf != rf or lf not in ("number", "string"):
        raise ExpressionError(f"cannot order {_show(left)} against {_show(right)}")
    return _ORDER[type(op)](left, right)


def _equal(left: Any, right: Any) -> bool:
    lf, rf = _family(left), _family(right)
    if lf != rf and "null" not in (lf, rf):
        raise ExpressionError(f"cannot compare {_show(left)} with {_show(right)}")
    return bool(left == right)


def _truth(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ExpressionError(f"{where} needs true or false, got {_show(value)}")
    return value


def evaluate(expression: str | ast.Expression, names: Mapping[str, Any]) -> Any:
    """The value of `expression` over `names`; any failure is an ExpressionError."""
    tree = parse(expression) if isinstance(expression, str) else expression

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        name = name_of(node)
        if name is not None:
            if name not in names:
                raise ExpressionError(f"unknown name '{name}'")
            return names[name]
        if isinstance(node, ast.List | ast.Tuple):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.UnaryOp):
            value = ev(node.operand)
            if isinstance(node.op, ast.Not):
                return not _truth(value, "'not'")
            if _family(value) != "number":
                raise ExpressionError(f"cannot negate {_show(value)}")
            return -value
        if isinstance(node, ast.BoolOp):
            is_and = isinstance(node.op, ast.And)
            for operand in node.values:
                if _truth(ev(operand), "'and'" if is_and else "'or'") != is_and:
                    return not is_and
            return is_and
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left), ev(node.right)
            families = {_family(left), _family(right)}
            if families != {"number"} and not (families == {"string"} and isinstance(node.op, ast.Add)):
                raise ExpressionError(f"cannot apply {type(node.op).__name__} to {_show(left)} and {_show(right)}")
            return _BIN[type(node.op)](left, right)
        if isinstance(node, ast.Compare):
            left = ev(node.left)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = ev(comparator)
                if not _compare(op, left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.Call):
            return FUNCTIONS[node.func.id](*[ev(a) for a in node.args])  # type: ignore[attr-defined]
        raise ExpressionError(f"unsupported {type(node).__name__}")

    try:
        return ev(tree)
    except ExpressionError:
        raise
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ExpressionError(f"{type(exc).__name__}: {exc}") from None


def evaluate_condition(expression: str | ast.Expression, names: Mapping[str, Any]) -> bool:
    """A condition's truth; anything but true or false is an ExpressionError."""
    return _truth(evaluate(expression, names), "a condition")


# -- types -----------------------------------------------------------------------------------------

Kind = Literal["number", "string", "boolean", "null", "list", "object", "any"]


@dataclass(frozen=True)
class Type:
    """What a name or a node can hold, as far as the checker needs to know."""

    kind: Kind
    item: Type | None = None
    """The element type of a list."""
    nullable: bool = False
    """May also be None (an optional argument)."""
    enum: tuple[Any, ...] | None = None
    """The only values allowed (a Literal or an enum in the schema)."""

    def __str__(self) -> str:
        text = f"list of {self.item}" if self.kind == "list" and self.item else self.kind
        return text + (" or null" if self.nullable and self.kind != "null" else "")


ANY, NUMBER, STRING, BOOLEAN, NULL = Type("any"), Type("number"), Type("string"), Type("boolean"), Type("null")


def can_equal(a: Type, b: Type) -> bool:
    """Whether values of `a` and `b` can be compared for equality."""
    if "any" in (a.kind, b.kind):
        return True
    if a.kind == "null" or b.kind == "null":
        return a.kind == b.kind or a.nullable or b.nullable
    if a.kind != b.kind:
        return False
    return a.kind != "list" or a.item is None or b.item is None or can_equal(a.item, b.item)


def type_of(value: Any) -> Type:
    """The type of a constant (a list's items are not looked at)."""
    kind = _family(value)
    return Type(kind) if kind != "list" else Type("list", ANY)  # type: ignore[arg-type]


def check_types(expression: str | ast.Expression, names: Mapping[str, Type], *, want: Type | None = None) -> Type:
    """The type of `expression` given the types of `names`; ExpressionError for an unknown name, an unknown
    function, or operands of types that cannot meet (string against number, bool against number, a
    constant outside an enum). With `want`, the result must be of that kind too."""
    tree = parse(expression) if isinstance(expression, str) else expression
    source = ast.unparse(tree)

    def fail(message: str) -> ExpressionError:
        return ExpressionError(f"{source!r}: {message}")

    def enum_check(typed: Type, node: ast.AST) -> None:
        """A constant compared with an enum-typed name must be one of its values (catches 'p1' for 'P1')."""
        choices = typed.item.enum if typed.kind == "list" and typed.item else typed.enum
        constants = node.elts if isinstance(node, ast.List | ast.Tuple) else [node]
        for c in constants:
            if choices is not None and isinstance(c, ast.Constant) and c.value is not None and c.value not in choices:
                raise fail(f"{c.value!r} is never a value here (allowed: {', '.join(map(repr, choices))})")

    def ty(node: ast.AST) -> Type:
        if isinstance(node, ast.Expression):
            return ty(node.body)
        if isinstance(node, ast.Constant):
            return type_of(node.value)
        name = name_of(node)
        if name is not None:
            if name not in names:
                close = difflib.get_close_matches(name, list(names), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise fail(f"unknown name '{name}' ({hint}known: {', '.join(sorted(names)) or 'none'})")
            return names[name]
        if isinstance(node, ast.List | ast.Tuple):
            items = [ty(e) for e in node.elts]
            for other in items[1:]:
                if not can_equal(items[0], other):
                    raise fail(f"a list mixes {items[0]} and {other}")
            return Type("list", items[0] if items else ANY)
        if isinstance(node, ast.UnaryOp):
            operand = ty(node.operand)
            need = BOOLEAN if isinstance(node.op, ast.Not) else NUMBER
            if operand.kind not in (need.kind, "any"):
                raise fail(f"'{ast.unparse(node)}' needs a {need}, got {operand}")
            return need
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                got = ty(value)
                if got.kind not in ("boolean", "any"):
                    raise fail(f"'{ast.unparse(value)}' is a {got}, not true or false")
            return BOOLEAN
        if isinstance(node, ast.BinOp):
            left, right = ty(node.left), ty(node.right)
            kinds = {left.kind, right.kind} - {"any"}
            if kinds <= {"number"}:
                return NUMBER
            if kinds == {"string"} and isinstance(node.op, ast.Add):
                return STRING
            raise fail(f"cannot apply {type(node.op).__name__} to {left} and {right}")
        if isinstance(node, ast.Compare):
            left_node, left = node.left, ty(node.left)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = ty(comparator)
                compare_types(op, left_node, left, comparator, right)
                left_node, left = comparator, right
            return BOOLEAN
        if isinstance(node, ast.Call):
            fn = node.func.id  # type: ignore[attr-defined]
            args = [ty(a) for a in node.args]
            if not args:
                raise fail(f"{fn}() needs an argument")
            if fn == "len":
                if len(args) != 1 or args[0].kind not in ("list", "string", "any"):
                    raise fail(f"len() takes one list or string, got {', '.join(map(str, args))}")
            elif any(a.kind not in ("number", "any") for a in args):
                raise fail(f"{fn}() takes numbers, got {', '.join(map(str, args))}")
            return NUMBER
        raise fail(f"unsupported {type(node).__name__}")

    def compare_types(op: ast.cmpop, ln: ast.AST, left: Type, rn: ast.AST, right: Type) -> None:
        if isinstance(op, _MEMBERSHIP):
            if right.kind == "string":
                if left.kind not in ("string", "any"):
                    raise fail(f"'in' a string needs a string on its left, got {left}")
                return
            if right.kind not in ("list", "any"):
                raise fail(f"'in' needs a list or a string on its right, got {right}")
            member = left.item if left.kind == "list" and left.item else left
            if right.item is not None and not can_equal(replace(member, nullable=False), right.item):
                raise fail(f"compares {left} with {right}")
            enum_check(left, rn)
            return
        if isinstance(op, _EQUALITY):
            if not can_equal(left, right):
                raise fail(f"compares {left} with {right}")
            enum_check(left, rn)
            enum_check(right, ln)
            return
        kinds = {left.kind, right.kind} - {"any"}
        if not (kinds <= {"number"} or kinds == {"string"}):
            raise fail(f"cannot order {left} against {right}")

    result = ty(tree)
    if want is not None and result.kind not in (want.kind, "any"):
        raise fail(f"is a {result}, not a {want}")
    return result


# -- types from a JSON schema ----------------------------------------------------------------------


def types_from_json_schema(schema: Mapping[str, Any]) -> dict[str, Type]:
    """The type of each property of an object's JSON schema (a pydantic model's, or an MCP tool's)."""
    defs = schema.get("$defs") or schema.get("definitions") or {}

    def resolve(node: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in node:
            node = defs.get(str(node["$ref"]).rsplit("/", 1)[-1], {})
        if len(node.get("allOf") or []) == 1:
            return resolve(node["allOf"][0])
        return node

    def convert(node: Mapping[str, Any]) -> Type:
        node = resolve(node)
        options = node.get("anyOf") or node.get("oneOf")
        if options:
            parts = [convert(o) for o in options]
            real = [p for p in parts if p.kind != "null"]
            nullable = len(real) < len(parts) or any(p.nullable for p in real)
            if len(real) == 1:
                return replace(real[0], nullable=nullable)
            if real and all(p.kind == real[0].kind for p in real) and all(p.enum for p in real):
                return Type(real[0].kind, nullable=nullable, enum=tuple(v for p in real for v in p.enum or ()))
            return Type("any", nullable=nullable)
        if "const" in node:
            return replace(type_of(node["const"]), enum=(node["const"],))
        declared = node.get("type")
        kinds = declared if isinstance(declared, list) else [declared] if declared else []
        nullable = "null" in kinds
        kinds = [k for k in kinds if k != "null"]
        enum = tuple(node["enum"]) if isinstance(node.get("enum"), list) else None
        if not kinds and enum:
            families = {_family(v) for v in enum}
            kinds = [families.pop()] if len(families) == 1 else []
        if len(kinds) != 1:
            return Type("any", nullable=nullable, enum=enum) if kinds or not nullable else NULL
        kind = {"integer": "number", "number": "number", "string": "string", "boolean": "boolean",
                "array": "list", "object": "object"}.get(kinds[0], "any")
        item = convert(node.get("items") or {}) if kind == "list" else None
        return Type(kind, item=item, nullable=nullable, enum=enum)  # type: ignore[arg-type]

    return {name: convert(prop) for name, prop in (resolve(schema).get("properties") or {}).items()}
