"""What a `torch.export` archive (.pt2) must be before torch reads it: `check_export_archive`.

``torch.export.load`` runs code from the archive in several ways, all of which are refused here, reading the
zip with the standard library and nothing of torch's but ``torch.load(..., weights_only=True)``:

- pickles: payload entries marked ``use_pickle`` (``torch.load(weights_only=False)``), ``custom_obj_N`` and
  ``opaque_obj_N`` constants (TorchScript's and Python's unpicklers), the legacy ``data/weights/NAME.pt`` and
  ``data/constants/NAME.pt`` members and sample inputs that ``torch.load(weights_only=True)`` refuses (torch
  then retries with ``weights_only=False``), and the older format of root-level members (``version``,
  ``serialized_*.pt``) torch falls back to when the archive cannot be read as a .pt2;
- native code: ``data/aotinductor/`` (compiled libraries torch loads) and every other member
  ``torch.export.save`` does not write;
- Python source in the program's JSON: every ``expr_str`` goes to ``sympy.sympify`` (an ``eval``), every
  ``guards_code`` line is ``exec``'d into the module's guard function, node targets and ``as_operator``
  arguments are resolved by ``getattr`` from ``torch``, ``_operator`` and ``math`` and then called, the names
  of inputs, values, nodes, keyword arguments and attributes are written by torch.fx into the Python source of
  the module it ``exec``'s, and a tree spec's ``collections.defaultdict`` or ``__enum__`` context imports a
  module named in the file.

So an archive must be the .pt2 format (an ``archive_format`` member that says ``pt2``), with every member in one
top folder and on an allowlist; no duplicate names, not even ones that differ in case only (torch looks names
up ignoring case); a zip that starts at offset 0 and ends with its directory record (no comment, nothing
prepended: torch's and Python's zip readers would otherwise read different members). Expressions pass a token
allowlist, guards an AST allowlist, targets are operators of ``aten``, ``prims`` or a few higher-order
operators (never one that reads or writes files), ``_operator`` and ``math`` functions torch writes for
symbolic shapes, or torch's ``sym_*`` functions; names are Python names, attribute paths parts that cannot end
a string literal. Members read into memory are bounded by their declared size, and tensors are stored
uncompressed, as torch.export.save writes them, so that what torch reads is bounded by the file's size.

Left to torch, after checking its code: tree spec types other than ``defaultdict`` are looked up in pytree's
registry of type names (nothing is imported); node metadata (``source_fn_stack``, ``nn_module_stack``,
``torch_fn``, ``from_node``, ``custom``) is parsed as strings and JSON and its targets resolved by ``getattr``
alone, never called; verifier names are looked up in a registry; weights and constants are raw bytes read
into tensors of the declared dtype and shape.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .foreign import NetworkError

MODEL = "model"  # the one program name torch.export.save writes and torch.export.load returns
ARCHIVE_FORMAT, MODEL_JSON = "archive_format", f"models/{MODEL}.json"
WEIGHTS_CONFIG, CONSTANTS_CONFIG = (
    f"data/weights/{MODEL}_weights_config.json",
    f"data/constants/{MODEL}_constants_config.json",
)
SAMPLE_INPUTS = f"data/sample_inputs/{MODEL}.pt"
SMALL_MEMBERS = {ARCHIVE_FORMAT, "archive_version", "byteorder", ".data/version", ".data/serialization_id"}
READ_MEMBERS = {MODEL_JSON, WEIGHTS_CONFIG, CONSTANTS_CONFIG, SAMPLE_INPUTS}
TENSOR_MEMBER = re.compile(r"data/weights/weight_\d{1,9}|data/constants/tensor_\d{1,9}")
EXTRA_MEMBER = re.compile(r"extra/[A-Za-z0-9_.-]{1,200}")
MAX_SMALL_BYTES = 4096
MAX_READ_BYTES = 64 * 2**20  # a JSON config or the sample inputs

END_OF_DIRECTORY, LOCAL_HEADER = b"PK\x05\x06", b"PK\x03\x04"
END_OF_DIRECTORY_BYTES = 22
COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)

REFUSED_MEMBERS = (  # (pattern, why) for the members torch would unpickle or load as native code
    (r"data/aotinductor/", "compiled native code (AOTInductor), which torch.export.load would load"),
    (r"data/weights/[^/]*\.pt$", "a legacy pickled state dict, which torch.export.load would unpickle"),
    (r"data/constants/[^/]*\.pt$", "legacy pickled constants, which torch.export.load would unpickle"),
    (r"data/constants/custom_obj_", "a pickled TorchScript object, which torch.export.load would unpickle"),
    (r"data/constants/opaque_obj_", "a pickled Python object, which torch.export.load would unpickle"),
    (r"data/sample_inputs/", "sample inputs of another program, which torch.export.load would unpickle"),
    (r"models/", "another program, which torch.export.load would read too"),
)

SYMBOL_NAME = re.compile(r"(?:s|u|ps|zf|zuf)\d{1,9}")
EXPRESSION_NAMES = frozenset(
    {  # the names in sympy's srepr of a shape expression, which torch writes
        "Symbol",
        "Integer",
        "Rational",
        "Float",
        "precision",
        "True",
        "False",
        "true",
        "false",
        "oo",
        "zoo",
        "nan",
        "int_oo",
        "Add",
        "Mul",
        "Pow",
        "Equality",
        "Unequality",
        "StrictLessThan",
        "LessThan",
        "StrictGreaterThan",
        "GreaterThan",
        "And",
        "Or",
        "Not",
        "Max",
        "Min",
        "Abs",
        "floor",
        "ceiling",
        "Piecewise",
        "ExprCondPair",
        # the sympy assumptions a symbol is made with
        "positive",
        "negative",
        "nonnegative",
        "nonpositive",
        "integer",
        "real",
        "finite",
        "infinite",
        "zero",
        "nonzero",
        "rational",
        "even",
        "odd",
        "extended_real",
        "commutative",
        # the functions torch's deserializer registers for sympify
        "FloorDiv",
        "ModularIndexing",
        "Where",
        "PythonMod",
        "Mod",
        "CleanDiv",
        "CeilToInt",
        "FloorToInt",
        "CeilDiv",
        "LShift",
        "RShift",
        "PowByNatural",
        "FloatPow",
        "FloatTrueDiv",
        "IntTrueDiv",
        "IsNonOverlappingAndDenseIndicator",
        "TruncToFloat",
        "TruncToInt",
        "RoundToInt",
        "RoundDecimal",
        "ToFloat",
        "Identity",
    }
)
EXPRESSION_OPERATORS = frozenset(
    {"+", "-", "*", "/", "//", "%", "**", "(", ")", ",", "=", "<", ">", "<=", ">=", "==", "!=", "&", "|", "~"}
)
NUMBER = re.compile(r"\d{1,20}(?:\.\d{1,20})?")
QUOTED = re.compile(r"'([^'\\]{1,40})'|\"([^\"\\]{1,40})\"")
DECIMAL = re.compile(r"-?\d{1,20}(?:\.\d{1,20})?(?:e[+-]?\d{1,4})?")  # Float('1.5', precision=53)
MAX_EXPRESSION_CHARS = 4096

GUARD_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _[]'().,+-*/%<>=!")
GUARD_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.Call,
    ast.Attribute,
    ast.Subscript,
    ast.Name,
    ast.Load,
    ast.Constant,
)
GUARD_FUNCTIONS = frozenset({"Max", "Min", "max", "min", "abs"})
GUARD_MATH = frozenset({"floor", "ceil", "trunc", "isnan"})
TENSOR_SIZES = frozenset({"size", "stride", "storage_offset"})

OPERATOR_TARGETS = frozenset(
    {
        f"_operator.{name}"
        for name in (
            "getitem",
            "add",
            "sub",
            "mul",
            "truediv",
            "floordiv",
            "mod",
            "pow",
            "neg",
            "pos",
            "eq",
            "ne",
            "lt",
            "le",
            "gt",
            "ge",
            "and_",
            "or_",
            "lshift",
            "rshift",
        )
    }
    | {f"math.{name}" for name in ("trunc", "floor", "ceil")}
    | {f"torch.{name}" for name in ("sym_float", "sym_int", "sym_ite", "sym_max", "sym_min", "sym_not", "_sym_sqrt")}
)
OP_OVERLOAD = re.compile(r"torch\.ops\.(aten|prims)\.([A-Za-z_][A-Za-z0-9_]{0,99})\.([A-Za-z][A-Za-z0-9_]{0,99})")
HIGHER_ORDER = re.compile(r"torch\.ops\.higher_order\.([a-z_]{1,100})")
HIGHER_ORDER_ALLOWED = frozenset(
    {
        "cond",
        "while_loop",
        "map_impl",
        "scan",
        "associative_scan",
        "wrap_with_set_grad_enabled",
        "wrap_with_autocast",
        "out_dtype",
    }
)
FILE_OPS = frozenset({"save", "from_file", "_print"})  # aten operators that write, read or print outside the graph

NAME_KEYS = frozenset({"name", "as_name"})  # the names of graph values, nodes and arguments: Python code to torch.fx
NAME_TABLES = frozenset({"tensor_values", "sym_int_values", "sym_bool_values", "sym_float_values", "custom_obj_values"})
NAME_LISTS = frozenset({"forward_arg_names", "field_names"})
PATH_KEYS = frozenset(
    {"parameter_name", "buffer_name", "tensor_constant_name", "custom_obj_name", "user_input_name", "fqn", "class_fqn"}
)  # attribute paths, written as getattr(module, "PART") where not names
PYTHON_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")
PATH_PART = re.compile(r"[ !#-\-/-\[\]-~]{1,200}")  # printable ASCII but for '"', '.' and '\\'

TREE_TYPES = frozenset(
    {None, "builtins.tuple", "builtins.list", "builtins.dict", "collections.OrderedDict", "collections.namedtuple"}
)


class _Refused(Exception):
    """Why a member is refused; `check_export_archive` names the archive and the member."""


def check_export_archive(path: str | Path, data: bytes | None = None) -> None:
    """Refuse a .pt2 archive that ``torch.export.load`` would unpickle, evaluate or load native code from (the
    module docstring lists what is checked); return quietly for one that ``torch.export.save`` could have written.
    With ``data`` (the file's bytes, read once), those bytes are checked, so that the caller loads exactly what
    was checked and nobody can swap the file in between; without, the file at ``path``.

    Raises:
        NetworkError: one line naming the archive, the member and why it is refused.
    """
    path = Path(path)
    try:
        with open(path, "rb") if data is None else io.BytesIO(data) as handle, zipfile.ZipFile(handle) as archive:
            infos = archive.infolist()
            _check_zip_layout(path, handle, infos)
            top = _common_top_folder(path, infos)
            members = _members_by_name(path, top, infos)
            for name in (ARCHIVE_FORMAT, WEIGHTS_CONFIG, CONSTANTS_CONFIG, MODEL_JSON, SAMPLE_INPUTS):
                if name in members:
                    _check_read_member(archive, members, name, f"{top}/{name}", path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as failure:
        raise NetworkError(f"{path}: a damaged or truncated archive ({failure})") from None
    except OSError as failure:
        raise NetworkError(f"{path}: cannot read ({failure.strerror or failure})") from None


# ------------------------------------------------------------------ the zip itself


def _check_zip_layout(path: Path, handle: Any, infos: list[zipfile.ZipInfo]) -> None:
    """The zip torch reads is the zip Python reads: it starts with a member at offset 0 and ends with its
    directory record (no comment); its members are not encrypted, and stored or deflated."""
    handle.seek(0, io.SEEK_END)
    size = handle.tell()
    handle.seek(max(size - END_OF_DIRECTORY_BYTES, 0))
    tail = handle.read(END_OF_DIRECTORY_BYTES)
    handle.seek(0)
    head = handle.read(len(LOCAL_HEADER))
    if (
        not infos
        or head != LOCAL_HEADER
        or not tail.startswith(END_OF_DIRECTORY)
        or tail[-2:] != b"\0\0"
        or min(info.header_offset for info in infos) != 0
    ):
        raise NetworkError(
            f"{path}: bytes before or after the zip's members (a comment, a prepended file or a zip "
            "inside a damaged one), which torch.export.save never writes"
        )
    for info in infos:
        if info.flag_bits & 0x1 or info.compress_type not in COMPRESSIONS:
            raise NetworkError(
                f"{path}: member {info.filename} is encrypted or compressed in a way torch does not read"
            )
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise NetworkError(
                f"{path}: member {info.filename} is stored uncompressed but declares "
                f"{info.file_size} bytes for {info.compress_size}"
            )


def _common_top_folder(path: Path, infos: list[zipfile.ZipInfo]) -> str:
    """The one folder every member is in, as torch.export.save writes them."""
    top = infos[0].filename.partition("/")[0]
    for info in infos:
        folder, slash, _ = info.filename.partition("/")
        if not slash or folder != top or not top or not top.isprintable() or "\\" in info.filename:
            raise NetworkError(
                f"{path}: member {info.filename} is not in the one top folder torch.export.save "
                "writes every member in (root-level members are torch's older format, which "
                "torch.export.load would unpickle)"
            )
    return top


def _members_by_name(path: Path, top: str, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    """The members by their name in the top folder: each there once (ignoring case, as torch looks names up),
    each one that torch.export.save writes, the program among them."""
    members: dict[str, zipfile.ZipInfo] = {}
    lowered: set[str] = set()
    for info in infos:
        name = info.filename[len(top) + 1 :]
        if name.lower() in lowered:
            raise NetworkError(
                f"{path}: member {info.filename} is there twice (names differing in case only are the "
                "same name to torch), so torch might read another copy than the one checked"
            )
        tensor = TENSOR_MEMBER.fullmatch(name)
        if not (name in SMALL_MEMBERS or name in READ_MEMBERS or tensor or EXTRA_MEMBER.fullmatch(name)):
            raise NetworkError(f"{path}: member {info.filename} is {_why_unknown(name)}; latentspectra refuses it")
        if tensor and info.compress_type != zipfile.ZIP_STORED:
            raise NetworkError(
                f"{path}: member {info.filename} is compressed, and torch would expand it to the size "
                "it declares; torch.export.save stores tensors uncompressed"
            )
        if name in SMALL_MEMBERS and info.file_size > MAX_SMALL_BYTES:
            raise NetworkError(
                f"{path}: member {info.filename} declares {info.file_size} bytes, expected at most {MAX_SMALL_BYTES}"
            )
        members[name] = info
        lowered.add(name.lower())
    for required in (ARCHIVE_FORMAT, MODEL_JSON):
        if required not in members:
            raise NetworkError(
                f"{path}: no member {top}/{required}; expected a torch.export program as "
                "torch.export.save writes it (.pt2)"
            )
    return members


def _why_unknown(name: str) -> str:
    return next(
        (why for pattern, why in REFUSED_MEMBERS if re.match(pattern, name)), "not a member torch.export.save writes"
    )


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """The member's bytes, refused unread when it declares more than ``limit``."""
    if info.file_size > limit:
        raise _Refused(f"declares {info.file_size} bytes, expected at most {limit}")
    with archive.open(info) as member:
        return member.read(limit + 1)


# ------------------------------------------------------------------ the members torch interprets


def _check_read_member(
    archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], name: str, shown: str, path: Path
) -> None:
    try:
        data = _read_bounded(archive, members[name], MAX_READ_BYTES)
        if name == ARCHIVE_FORMAT:
            _check_archive_format(data)
        elif name == SAMPLE_INPUTS:
            _check_sample_inputs(data)
        elif name == MODEL_JSON:
            _check_program(_json_object(data))
        else:
            prefix = "weight_" if name == WEIGHTS_CONFIG else "tensor_"
            _check_payload_config(_json_object(data), prefix, name.rpartition("/")[0], members)
    except _Refused as refusal:
        raise NetworkError(f"{path}: member {shown} {refusal}; latentspectra refuses it") from None


def _json_object(data: bytes) -> dict:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as failure:
        raise _Refused(f"is not JSON ({type(failure).__name__})") from None
    if not isinstance(value, dict):
        raise _Refused(f"holds a {type(value).__name__}, expected a JSON object")
    return value


def _check_archive_format(data: bytes) -> None:
    if data != b"pt2":
        raise _Refused(f"says {data[:20]!r}, expected b'pt2' (the torch.export archive format)")


def _check_sample_inputs(data: bytes) -> None:
    """Sample inputs torch can load with ``weights_only=True``, so that it never retries without."""
    if not data:
        return
    try:
        torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as failure:
        raise _Refused(
            f"is not a plain tensor file (torch.load(weights_only=True) fails: {type(failure).__name__}), "
            "so torch.export.load would unpickle it"
        ) from None


def _check_payload_config(config: dict, prefix: str, folder: str, members: dict[str, zipfile.ZipInfo]) -> None:
    """Every entry raw tensor bytes in a ``PREFIX_N`` member: none pickled, no TorchScript or Python object."""
    entries = config.get("config")
    if not isinstance(entries, dict):
        raise _Refused('has no "config" object')
    for fqn, entry in entries.items():
        for part in fqn.split("."):
            _check_name(part, PATH_PART)
        if not isinstance(entry, dict):
            raise _Refused(f"entry {_shown(fqn)} is not an object")
        if entry.get("use_pickle", False) is not False:
            raise _Refused(f"entry {_shown(fqn)} is pickled (use_pickle), which torch.export.load would unpickle")
        path_name = entry.get("path_name")
        if not (isinstance(path_name, str) and re.fullmatch(rf"{prefix}\d{{1,9}}", path_name)):
            raise _Refused(
                f"entry {_shown(fqn)} names {_shown(path_name)}, expected raw tensor bytes {prefix}N "
                "(objects are pickled, which torch.export.load would unpickle)"
            )
        if f"{folder}/{path_name}" not in members:
            raise _Refused(f"entry {_shown(fqn)} names {path_name}, which the archive does not hold")


def _walk(value: Any) -> Iterator[dict]:
    """Every JSON object in ``value``, nested ones included (without recursion: the nesting is the file's)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_program(program: dict) -> None:
    """The parts of a serialized program that torch evaluates, executes, resolves to a callable or writes into
    the Python code torch.fx generates for the module."""
    for item in _walk(program):
        _check_names(item)
        if "target" in item and "inputs" in item:  # a graph node
            _check_target(item["target"])
        if "as_operator" in item:
            _check_target(item["as_operator"])
        if "expr_str" in item:
            _check_expression(item["expr_str"])
        for key in ("in_spec", "out_spec"):
            if key in item:
                _check_tree_spec(item[key])
    guards = program.get("guards_code", [])
    if not isinstance(guards, list):
        raise _Refused("has guards_code that is not a list")
    for guard in guards:
        _check_guard(guard)


def _check_names(item: dict) -> None:
    """The names torch.fx writes into the module's code (value, node, argument and input names, attribute
    paths): Python names, and paths of parts that cannot end a string literal."""
    for key, value in item.items():
        if key in NAME_KEYS and isinstance(value, str) and value:
            _check_name(value, PYTHON_NAME)
        elif key in PATH_KEYS and isinstance(value, str) and value:
            for part in value.split("."):
                _check_name(part, PATH_PART)
        elif (key in NAME_TABLES and isinstance(value, dict)) or (key in NAME_LISTS and isinstance(value, list)):
            for name in value:
                _check_name(name, PYTHON_NAME)


def _check_name(name: Any, pattern: re.Pattern) -> None:
    if not (isinstance(name, str) and pattern.fullmatch(name)):
        raise _Refused(
            f"has the name {_shown(name)}, expected a Python name (torch.fx writes names into the module's code)"
        )


def _shown(text: Any) -> str:
    return repr(text if not isinstance(text, str) or len(text) <= 80 else text[:77] + "...")


# ------------------------------------------------------------------ node targets


def _check_target(target: Any) -> None:
    """An operator torch resolves from a string and calls: an aten or prims overload, an allowed higher-order
    operator, or a function torch writes for symbolic shapes."""
    if not isinstance(target, str):
        raise _Refused(f"has the node target {_shown(target)}, expected an operator name")
    if not _is_allowed_target(target):
        raise _Refused(
            f"has the node target {_shown(target)}, which is not an operator latentspectra runs (aten "
            "and prims overloads, a few higher-order operators and the symbolic-shape functions)"
        )


def _is_allowed_target(target: str) -> bool:
    if target in OPERATOR_TARGETS:
        return True
    overload, higher_order = OP_OVERLOAD.fullmatch(target), HIGHER_ORDER.fullmatch(target)
    if overload:
        namespace, name, variant = overload.groups()
        return name not in FILE_OPS and isinstance(
            _resolved(getattr(torch.ops, namespace), name, variant), torch._ops.OpOverload
        )
    return (
        higher_order is not None
        and higher_order[1] in HIGHER_ORDER_ALLOWED
        and isinstance(_resolved(torch.ops.higher_order, higher_order[1]), torch._ops.HigherOrderOperator)
    )


def _resolved(namespace: Any, *names: str) -> Any:
    """``namespace.a.b`` for the names, or None where an attribute is missing (torch's op lookups)."""
    value = namespace
    for name in names:
        try:
            value = getattr(value, name)
        except Exception:
            return None
    return value


# ------------------------------------------------------------------ shape expressions (sympify)


def _check_expression(text: Any) -> None:
    """A shape expression sympify may evaluate: allowed names, numbers, operators and symbol-name strings only."""
    if not isinstance(text, str) or len(text) > MAX_EXPRESSION_CHARS:
        raise _Refused(
            f"has the shape expression {_shown(text)}, expected a string of at most "
            f"{MAX_EXPRESSION_CHARS} characters, which torch.export.load evaluates"
        )
    try:
        tokens = [
            token
            for token in tokenize.generate_tokens(io.StringIO(text).readline)
            if token.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER)
        ]
    except (tokenize.TokenError, SyntaxError):
        raise _Refused(f"has the shape expression {_shown(text)}, which does not tokenize") from None
    for index, token in enumerate(tokens):
        why = _expression_token_refusal(token, tokens[index - 1] if index else None)
        if why:
            raise _Refused(f"has the shape expression {_shown(text)} ({why}), which torch.export.load would evaluate")


def _expression_token_refusal(token: tokenize.TokenInfo, previous: tokenize.TokenInfo | None) -> str | None:
    """Why ``token`` has no place in a shape expression, or None: a name of the allowlist or a symbol, a number,
    an operator, a symbol name or a decimal number in quotes (not joined to another string)."""
    if token.type == tokenize.NAME:
        ok: object = token.string in EXPRESSION_NAMES or SYMBOL_NAME.fullmatch(token.string)
    elif token.type == tokenize.NUMBER:
        ok = NUMBER.fullmatch(token.string)
    elif token.type == tokenize.STRING:
        quoted = QUOTED.fullmatch(token.string)
        text = quoted and (quoted[1] or quoted[2])
        ok = (
            text
            and (SYMBOL_NAME.fullmatch(text) or DECIMAL.fullmatch(text))
            and not (previous and previous.type == tokenize.STRING)
        )
    else:
        ok = token.type == tokenize.OP and token.string in EXPRESSION_OPERATORS
    return None if ok else f"{tokenize.tok_name[token.type].lower()} {token.string!r}"


# ------------------------------------------------------------------ guards (exec'd into the module's guard function)


def _check_guard(text: Any) -> None:
    """A guard torch executes: comparisons and arithmetic of whole numbers and of input sizes L['x'].size()[i]."""
    if not isinstance(text, str) or len(text) > MAX_EXPRESSION_CHARS or not set(text) <= GUARD_CHARACTERS:
        raise _Refused(
            f"has the guard {_shown(text)} (characters outside a size comparison), which torch would execute"
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise _Refused(f"has the guard {_shown(text)}, which is not an expression") from None
    for node in ast.walk(tree):
        why = _guard_node_refusal(node)
        if why:
            raise _Refused(f"has the guard {_shown(text)} ({why}), which torch would execute")


def _guard_node_refusal(node: ast.AST) -> str | None:
    """Why ``node`` has no place in a guard, or None."""
    if not isinstance(node, GUARD_NODES):
        return f"a {type(node).__name__}"
    if isinstance(node, ast.Name) and node.id not in GUARD_FUNCTIONS | {"L", "math"}:
        return f"the name {node.id}"
    if isinstance(node, ast.Attribute) and not (
        (node.attr in TENSOR_SIZES and isinstance(node.value, ast.Subscript))
        or (node.attr in GUARD_MATH and isinstance(node.value, ast.Name) and node.value.id == "math")
    ):
        return f"the attribute {node.attr}"
    if isinstance(node, ast.Call) and not isinstance(node.func, (ast.Attribute, ast.Name)):
        return "a call of a computed function"
    if isinstance(node, ast.Constant) and not (
        (isinstance(node.value, int) and abs(node.value) < 10**20)
        or (isinstance(node.value, str) and PYTHON_NAME.fullmatch(node.value))
    ):
        return f"the constant {node.value!r}"
    return None


# ------------------------------------------------------------------ tree specs (treespec_loads)


def _check_tree_spec(text: Any) -> None:
    """A pytree spec of registered container types whose contexts import nothing (no defaultdict, no enums)."""
    try:
        protocol, spec = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        raise _Refused(f"has the tree spec {_shown(text)}, expected [1, spec] as JSON") from None
    for node in _walk(spec):
        kind = node.get("type")
        if kind not in TREE_TYPES:
            raise _Refused(
                f"has a tree spec of the type {_shown(kind)}, not one latentspectra reads (torch imports "
                "the module a defaultdict names)"
            )
        context = node.get("context")
        if kind not in (None, "collections.namedtuple") and isinstance(context, str) and _names_an_enum(context):
            raise _Refused("has a tree spec whose context names an enum, whose module torch would import")
    if protocol != 1:
        raise _Refused(f"has a tree spec of protocol {_shown(protocol)}, expected 1")


def _names_an_enum(context: str) -> bool:
    try:
        decoded = json.loads(context)
    except (ValueError, RecursionError):
        return False  # torch cannot read it either
    return any("__enum__" in item for item in _walk(decoded))
