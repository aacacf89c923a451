"""Key roles, AIREC_ACTIVATE, AIREC_TRAINER, AIREC_MODEL_STORE and serving's fallback reasons are StrEnums
defined once (issue 18.5); nowhere else in airec/ is one of their words written out as a bare string
where it means that role, mode, kind or reason.

Read from the source (ast) without importing it. A word counts only in a context that gives it that
meaning: compared with, assigned to, passed as or keyed by a name that says so (`role`, `trainer`,
`activate`, `store`, `fallback`, `AIREC_TRAINER`, ...), or as `keys["admin"]`. The same words elsewhere
(`airec bench ingest`, `airec worker`, a `"database"` health field) mean something else and pass.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from airec.auth.roles import Role
from airec.config import ActivationMode, Settings, TrainerMode
from airec.modelstore import StoreKind
from airec.serving.service import FallbackReason

PACKAGE = Path(__file__).resolve().parent.parent / "airec"


@dataclass(frozen=True)
class Family:
    enum: type
    #: A context name (lower case) containing one of these gives the words this enum's meaning.
    contexts: tuple[str, ...]

    @property
    def words(self) -> set[str]:
        return {member.value for member in self.enum}


FAMILIES = (
    Family(Role, ("role",)),
    Family(ActivationMode, ("activate", "activation", "policy")),
    Family(TrainerMode, ("trainer",)),
    Family(StoreKind, ("store",)),
    Family(FallbackReason, ("fallback",)),
)

#: airec/training/ is being rewritten by issue 18.2's engineer and not edited here; these comparisons
#: (`policy != "if-better"`, `settings.trainer == "worker"`) become ActivationMode.IF_BETTER and
#: TrainerMode.WORKER when that work is merged. (file, word) -> occurrences still allowed.
PENDING_IN_TRAINING: dict[tuple[str, str], int] = {}


def _name(node: ast.AST | None) -> str:
    """The name an expression goes by: `x`, `a.b.x`, `d["x"]`, `f(...)` -> x (lower case)."""
    if isinstance(node, ast.Name):
        return node.id.lower()
    if isinstance(node, ast.Attribute):
        return node.attr.lower()
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value).lower()
    if isinstance(node, ast.Call):
        return _name(node.func)
    if isinstance(node, ast.arg):
        return node.arg.lower()
    return ""


def _strings(node: ast.AST | None) -> list[ast.Constant]:
    """String constants a value is made of: "x", ("x", "y"), ["x"], "x" if c else "y"."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [c for element in node.elts for c in _strings(element)]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    return []


def _local_parameters(tree: ast.Module) -> dict[str, list[str]]:
    """Function name -> its positional parameter names (to name positional arguments of local calls)."""
    found: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = [a.arg.lower() for a in [*node.args.posonlyargs, *node.args.args]]
    return found


def _enum_bodies(tree: ast.Module) -> set[int]:
    """ids of the nodes inside an Enum class (where the words are defined, once)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(_name(base).endswith("enum") for base in node.bases):
            inside |= {id(child) for child in ast.walk(node)}
    return inside


def _pairs(tree: ast.Module) -> list[tuple[str, ast.Constant]]:
    """(context name, string constant) for every place where a string takes a name's meaning."""
    params = _local_parameters(tree)
    out: list[tuple[str, ast.Constant]] = []

    def bind(name: str, value: ast.AST | None) -> None:
        out.extend((name, constant) for constant in _strings(value))

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for operand in operands:
                for other in operands:
                    if other is not operand:
                        bind(_name(other), operand)
        elif isinstance(node, ast.Call):
            for keyword in node.keywords:
                bind((keyword.arg or "").lower(), keyword.value)
            option = next(
                (a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value)[:2] == "--"), ""
            )
            for keyword in node.keywords:  # add_argument("--role", choices=[...], default=...)
                bind(str(option).lstrip("-").lower(), keyword.value)
            for name, argument in zip(params.get(_name(node.func), []), node.args, strict=False):
                bind(name, argument)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    bind(key.value.lower(), value)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                bind(_name(target), node.value)
        elif isinstance(node, ast.Subscript) and _name(node.value).endswith("keys"):
            bind("role", node.slice)  # keys["admin"]: the key of a role
        elif isinstance(node, (ast.For, ast.comprehension)):
            bind(_name(node.target), node.iter)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            named = [*node.args.posonlyargs, *node.args.args]
            for argument, default in zip(
                named[len(named) - len(node.args.defaults) :], node.args.defaults, strict=True
            ):
                bind(argument.arg.lower(), default)
    return out


def bare_literals(source: str) -> list[tuple[int, str, str]]:
    """(line, enum, word) for each enum word written out where it means that enum's value."""
    tree = ast.parse(source)
    skip = _enum_bodies(tree)
    found = set()
    for context, constant in _pairs(tree):
        if id(constant) in skip or not context:
            continue
        for family in FAMILIES:
            if constant.value in family.words and any(word in context for word in family.contexts):
                found.add((constant.lineno, family.enum.__name__, constant.value))
    return sorted(found)


#: In a template: a quoted enum word inside a {{ }} or {% %} expression that names the context.
_JINJA = re.compile(r"\{[{%](.*?)[}%]\}", re.S)


def template_literals(text: str) -> list[tuple[str, str]]:
    found = []
    for expression in _JINJA.findall(text):
        for family in FAMILIES:
            if any(word in expression.lower() for word in family.contexts):
                for word in family.words:
                    if re.search(rf"""["']{re.escape(word)}["']""", expression):
                        found.append((family.enum.__name__, word))
    return found


def test_the_scanner_sees_the_contexts_that_give_a_word_its_meaning():
    """Guards the guard: each context is caught, and the same words in other meanings are not."""
    flagged = """
if principal.role == "admin": pass
Viewer(name=None, role="read")
answer = {"fallback": "popularity"}
fallback = "popularity"
if settings.trainer != "worker": pass
env = {"AIREC_TRAINER": "worker", "AIREC_MODEL_STORE": "database"}
if policy != "if-better": pass
token = keys["ingest"]
for role in ("ingest", "read"): pass
parser.add_argument("--role", choices=["ingest", "admin"])
def call(method, path, role): pass
call("GET", "/x", "admin")
def make(model_store="files"): pass
"""
    words = [(line, word) for line, _, word in bare_literals(flagged)]
    assert words == [
        (2, "admin"),
        (3, "read"),
        (4, "popularity"),
        (5, "popularity"),
        (6, "worker"),
        (7, "database"),
        (7, "worker"),
        (8, "if-better"),
        (9, "ingest"),
        (10, "ingest"),
        (10, "read"),
        (11, "admin"),
        (11, "ingest"),
        (13, "admin"),
        (14, "files"),
    ]
    other_meanings = """
if args.which == "ingest": pass
argv = [sys.executable, "-m", "airec.cli", "worker"]
report = {"database": db_state}
pairs = {"model": 1, "popularity": 2}
class Role(StrEnum):
    ADMIN = "admin"
"""
    assert bare_literals(other_meanings) == []
    assert template_literals('{% if role == (form.role or "read") %}') == [("Role", "read")]
    assert template_literals("{{ viewer.role }} read the docs") == []


def _found_in_package() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).as_posix()
        for line, enum, word in bare_literals(path.read_text(encoding="utf-8")):
            found.setdefault((relative, word), []).append(f"{relative}:{line}: {word!r} means {enum}")
    for path in sorted(PACKAGE.rglob("*.html")):
        relative = path.relative_to(PACKAGE.parent).as_posix()
        for enum, word in template_literals(path.read_text(encoding="utf-8")):
            found.setdefault((relative, word), []).append(f"{relative}: {word!r} means {enum}")
    return found


def test_no_bare_enum_literals_in_airec():
    found = _found_in_package()
    offending = [
        place for key, places in found.items() for place in places[PENDING_IN_TRAINING.get(key, 0) :]
    ]
    assert not offending, "use the enum member instead of its text:\n" + "\n".join(offending)


def test_settings_hold_enum_members_and_refuse_other_words(monkeypatch):
    monkeypatch.setenv("AIREC_ACTIVATE", "always")
    monkeypatch.setenv("AIREC_TRAINER", "worker")
    monkeypatch.setenv("AIREC_MODEL_STORE", "database")
    settings = Settings.from_env()
    assert settings.activate is ActivationMode.ALWAYS
    assert settings.trainer is TrainerMode.WORKER
    assert settings.model_store is StoreKind.DATABASE
    assert Settings.from_env({"trainer": "thread"}).trainer is TrainerMode.THREAD
    for name, message in (
        ("AIREC_ACTIVATE", "AIREC_ACTIVATE must be if-better or always"),
        ("AIREC_TRAINER", "AIREC_TRAINER must be thread"),
        ("AIREC_MODEL_STORE", "AIREC_MODEL_STORE must be files or database"),
    ):
        monkeypatch.setenv(name, "sometimes")
        try:
            Settings.from_env()
        except ValueError as exc:
            assert message in str(exc)
        else:
            raise AssertionError(f"{name}=sometimes was accepted")
        monkeypatch.delenv(name)
