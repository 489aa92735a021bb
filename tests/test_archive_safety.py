"""A torch.export archive (.pt2) that torch.export.load would make run code (pickles, Python expressions, guard
code, operators resolved from strings, names written into torch.fx's code, modules imported from tree specs,
native code, torch's older format) is refused with one line naming the archive and the member, and its code
never runs: each crafted archive's payload would create a file, which must not exist afterwards. The same
archives given to torch alone do run their payload (where marked live), so each check guards a real attack;
a clean export still loads."""

from __future__ import annotations

import contextlib
import json
import pickle
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import run_cli
from latentspectra.models.archive import check_export_archive
from latentspectra.models.foreign import NetworkError, load_network_file

LATENT = 4
PAYLOAD_MODULE = "latentspectra_test_payload"  # a module whose import creates the payload file


class TinyGenerator(nn.Module):
    """z (N, 4) -> images (N, 1, 4, 4) in [0, 1], with a parameter, a buffer and a tensor constant."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(LATENT, 16)
        self.register_buffer("shift", torch.full((16,), 0.1))
        self.scale = torch.linspace(0.5, 1.5, 16)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(z) * self.scale + self.shift).view(-1, 1, 4, 4)


class TinyClassifier(nn.Module):
    """images (N, 1, 4, 4) -> logits over 2 labels."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(images.flatten(1))


def _export(module: nn.Module, example: torch.Tensor, path: Path) -> Path:
    program = torch.export.export(module.eval(), (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(path))
    return path


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """A directory with a clean generator.pt2 (dynamic batch) and classifier.pt2."""
    root = tmp_path_factory.mktemp("clean")
    torch.manual_seed(0)
    _export(TinyGenerator(), torch.zeros(2, LATENT), root / "generator.pt2")
    _export(TinyClassifier(), torch.zeros(2, 1, 4, 4), root / "classifier.pt2")
    return root


# ------------------------------------------------------------------ crafting archives


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _write(members: list[tuple[str, bytes]] | dict[str, bytes], path: Path) -> Path:
    """An archive of ``members`` in order, duplicates kept (zipfile warns about them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as archive:
        warnings.simplefilter("ignore", UserWarning)
        for name, data in members.items() if isinstance(members, dict) else members:
            archive.writestr(name, data)
    return path


class Touch:
    """Pickles to a call that creates the file ``target``: unpickling it is observable."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def _touch_code(payload: Path) -> str:
    return f"__import__('pathlib').Path({str(payload)!r}).touch()"


def _edit_json(members: dict[str, bytes], name: str, change: Callable[[dict], None]) -> None:
    record = json.loads(members[name])
    change(record)
    members[name] = json.dumps(record).encode()


def _signature(program: dict) -> dict:
    return program["graph_module"]["module_call_graph"][0]["signature"]


def _payload_module(payload: Path) -> str:
    return f"import pathlib\npathlib.Path({str(payload)!r}).touch()\nfactory = dict\n"


def _use_pickle(config: str, fqn: str, member: str):
    def craft(members, top, payload):
        _edit_json(members, f"{top}/{config}", lambda record: record["config"][fqn].update(use_pickle=True))
        members[f"{top}/{member}"] = pickle.dumps(Touch(payload))

    return craft


def _pickled_object(prefix: str):
    def craft(members, top, payload):
        name = f"{prefix}0"
        _edit_json(
            members,
            f"{top}/data/constants/model_constants_config.json",
            lambda record: record["config"]["scale"].update(path_name=name, use_pickle=True),
        )
        members[f"{top}/data/constants/{name}"] = pickle.dumps(Touch(payload))

    return craft


def _member(name: str):
    def craft(members, top, payload):
        members[f"{top}/{name}"] = pickle.dumps(Touch(payload))

    return craft


def _program(change: Callable[[dict, Path], None]):
    def craft(members, top, payload):
        _edit_json(members, f"{top}/models/model.json", lambda program: change(program, payload))

    return craft


def _expression(program: dict, payload: Path) -> None:
    text = json.dumps(program).replace("Symbol(", f"{_touch_code(payload)} or Symbol(", 1)
    program.clear()
    program.update(json.loads(text))


def _guard(program: dict, payload: Path) -> None:
    program["guards_code"] = [f"{_touch_code(payload)} is None"]


def _node_target(program: dict, payload: Path) -> None:
    program["graph_module"]["graph"]["nodes"].insert(
        0,
        {
            "target": "torch.os.mkdir",
            "inputs": [{"name": "path", "arg": {"as_string": str(payload)}, "kind": 1}],
            "outputs": [],
            "metadata": {},
            "name": "mkdir",
        },
    )


def _operator_argument(program: dict, payload: Path) -> None:
    node = program["graph_module"]["graph"]["nodes"][0]
    node["inputs"].append({"name": "callback", "arg": {"as_operator": "torch.os.mkdir"}, "kind": 2})


def _defaultdict_spec(program: dict, payload: Path) -> None:
    context = {"default_factory_module": PAYLOAD_MODULE, "default_factory_name": "factory", "dict_context": []}
    spec = {"type": "collections.defaultdict", "context": context, "children_spec": []}
    _signature(program)["out_spec"] = json.dumps([1, spec])


def _enum_spec(program: dict, payload: Path) -> None:
    spec = json.loads(_signature(program)["in_spec"])
    enum = {"__enum__": True, "fqn": f"{PAYLOAD_MODULE}:factory", "name": "x"}
    spec[1]["children_spec"][1]["context"] = json.dumps([enum])
    _signature(program)["in_spec"] = json.dumps(spec)


def _input_name(program: dict, payload: Path) -> None:
    """The input z renamed to code that torch.fx writes into the module's source."""
    text = json.dumps(program).replace('"z"', json.dumps(f"z={_touch_code(payload)}"))
    program.clear()
    program.update(json.loads(text))
    _signature(program)["forward_arg_names"] = ["z"]


def _attribute_path(members, top, payload):
    """A buffer path that ends torch.fx's getattr(self, "PATH") string and calls the payload (no dots: paths split
    there)."""
    touch = f'getattr(getattr(__import__("pathlib"), "Path")({json.dumps(str(payload))}), "touch")()'
    path = json.dumps(f'linear"), {touch}, getattr(self, "linear')
    for name in ("models/model.json", "data/weights/model_weights_config.json"):
        members[f"{top}/{name}"] = members[f"{top}/{name}"].replace(b'"shift"', path.encode())


def _older_format(members, top, payload):
    from torch._export.serde.schema import SCHEMA_VERSION

    program = members[f"{top}/models/model.json"]
    members.clear()
    members.update(
        {
            "version": ".".join(map(str, SCHEMA_VERSION)).encode(),
            "serialized_exported_program.json": program,
            "serialized_state_dict.pt": b"",
            "serialized_constants.pt": pickle.dumps(Touch(payload)),
            "serialized_example_inputs.pt": b"",
        }
    )


def _case_twin(members, top, payload):
    members[f"{top}/DATA/sample_inputs/model.pt"] = pickle.dumps(Touch(payload))


# (id, craft(members, top, payload), the member the refusal names, whether torch alone runs the payload)
ATTACKS = [
    (
        "pickled-weight",
        _use_pickle("data/weights/model_weights_config.json", "linear.weight", "data/weights/weight_0"),
        "data/weights/model_weights_config.json",
        True,
    ),
    (
        "pickled-constant",
        _use_pickle("data/constants/model_constants_config.json", "scale", "data/constants/tensor_0"),
        "data/constants/model_constants_config.json",
        True,
    ),
    ("torchscript-object", _pickled_object("custom_obj_"), "data/constants/custom_obj_0", False),
    ("python-object", _pickled_object("opaque_obj_"), "data/constants/opaque_obj_0", True),
    ("legacy-weights", _member("data/weights/model.pt"), "data/weights/model.pt", True),
    ("legacy-constants", _member("data/constants/model.pt"), "data/constants/model.pt", True),
    ("sample-inputs", _member("data/sample_inputs/model.pt"), "data/sample_inputs/model.pt", True),
    ("aotinductor", _member("data/aotinductor/model/model.so"), "data/aotinductor/model/model.so", False),
    ("expression", _program(_expression), "models/model.json", True),
    ("guard", _program(_guard), "models/model.json", True),
    ("node-target", _program(_node_target), "models/model.json", False),
    ("operator-argument", _program(_operator_argument), "models/model.json", False),
    ("input-name", _program(_input_name), "models/model.json", True),
    ("attribute-path", _attribute_path, "data/weights/model_weights_config.json", True),
    ("defaultdict-spec", _program(_defaultdict_spec), "models/model.json", True),
    ("enum-spec", _program(_enum_spec), "models/model.json", True),
    ("older-format", _older_format, "version", True),
    ("case-twin", _case_twin, "DATA/sample_inputs/model.pt", False),
]


@pytest.fixture
def payload(tmp_path, monkeypatch) -> Path:
    """Where a payload would write; a module on the import path whose import writes there."""
    target = tmp_path / "PAYLOAD"
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / f"{PAYLOAD_MODULE}.py").write_text(_payload_module(target))
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    monkeypatch.delitem(sys.modules, PAYLOAD_MODULE, raising=False)
    yield target
    sys.modules.pop(PAYLOAD_MODULE, None)


def _crafted(clean: Path, craft, payload: Path, path: Path) -> Path:
    members = _members(clean / "generator.pt2")
    craft(members, "generator", payload)
    return _write(members, path)


def _one_line(message: str) -> bool:
    return len(message.strip().splitlines()) == 1


# ------------------------------------------------------------------ the checks


@pytest.mark.parametrize(
    "craft, member", [(craft, member) for _, craft, member, _ in ATTACKS], ids=[name for name, *_ in ATTACKS]
)
@pytest.mark.slow
def test_an_archive_that_would_run_code_is_refused_and_runs_nothing(clean, tmp_path, payload, craft, member):
    path = _crafted(clean, craft, payload, tmp_path / "crafted" / "generator.pt2")
    with pytest.raises(NetworkError) as refusal:
        load_network_file(path, "generator")
    message = str(refusal.value)
    assert _one_line(message) and str(path) in message and member in message, message
    assert not payload.exists() and PAYLOAD_MODULE not in sys.modules


@pytest.mark.parametrize(
    "craft", [craft for _, craft, _, live in ATTACKS if live], ids=[name for name, _, _, live in ATTACKS if live]
)
def test_torch_alone_runs_the_payload_of_each_crafted_archive(clean, tmp_path, payload, craft):
    """The control: without the checks, loading (and calling) the crafted archive runs its payload."""
    path = _crafted(clean, craft, payload, tmp_path / "crafted" / "generator.pt2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.suppress(Exception):
            torch.export.load(str(path)).module()(torch.zeros(3, LATENT))
    assert payload.exists()


def test_the_cli_refuses_a_crafted_generator_in_one_line_and_runs_nothing(clean, tmp_path, capsys, payload):
    networks = tmp_path / "mine"
    _crafted(clean, _program(_expression), payload, networks / "generator.pt2")
    (networks / "classifier.pt2").write_bytes((clean / "classifier.pt2").read_bytes())
    (networks / "networks.json").write_text(
        json.dumps({"generator": "generator.pt2", "classifier": "classifier.pt2", "pixel_range": [0, 1]})
    )
    code, _, err = run_cli(
        capsys,
        "basis",
        "--networks",
        str(networks),
        "--out",
        str(tmp_path / "out" / "b.safetensors"),
        "--device",
        "cpu",
        "--quiet",
    )
    assert code == 2 and _one_line(err) and "generator.pt2" in err and "models/model.json" in err, err
    assert not payload.exists() and not (tmp_path / "out").exists()


def test_a_clean_export_passes_and_loads(clean):
    check_export_archive(clean / "generator.pt2")
    generator = load_network_file(clean / "generator.pt2", "generator")
    assert tuple(generator(torch.zeros(3, LATENT)).shape) == (3, 1, 4, 4)


@pytest.mark.parametrize(
    "change", [lambda data: b"junk" + data, lambda data: data[:-2] + b"\x03\x00abc"], ids=["prepended", "comment"]
)
def test_bytes_around_the_zip_are_refused(clean, tmp_path, change):
    """Python's and torch's zip readers would read other members of such a file."""
    path = tmp_path / "generator.pt2"
    path.write_bytes(change((clean / "generator.pt2").read_bytes()))
    with pytest.raises(NetworkError, match="bytes before or after the zip's members"):
        check_export_archive(path)
    with pytest.raises(NetworkError, match="damaged or truncated archive|bytes before or after"):
        load_network_file(path, "generator")


def test_an_exact_duplicate_member_is_refused(clean, tmp_path, payload):
    members = list(_members(clean / "generator.pt2").items())
    members.append(("generator/data/sample_inputs/model.pt", pickle.dumps(Touch(payload))))
    path = _write(members, tmp_path / "generator.pt2")
    with pytest.raises(NetworkError, match="data/sample_inputs/model.pt is there twice"):
        load_network_file(path, "generator")
    assert not payload.exists()


@pytest.mark.parametrize(
    "expression",
    [
        "Symbol('s77', positive=True, integer=True)",
        "2*s0 + 1",
        "FloorDiv(s0, 2) + Mod(s1, 3)",
        "s0**2",
        "Max(Integer(1), Add(Symbol('s0', positive=True, integer=True), Integer(-4)))",
        "Equality(s0, Integer(4))",
        "(s0 >= 2) & (s0 <= 10)",
        "Mul(Float('1.5', precision=53), ToFloat(Symbol('s0', positive=True, integer=True)))",
        "Piecewise(ExprCondPair(s0, StrictGreaterThan(s0, Integer(2))), ExprCondPair(s1, true))",
        "-int_oo",
    ],
)
def test_shape_expressions_torch_writes_pass(clean, tmp_path, expression):
    members = _members(clean / "generator.pt2")
    _edit_json(
        members,
        "generator/models/model.json",
        lambda program: program.update(
            graph_module={**program["graph_module"], "extra": [{"expr_str": expression, "hint": None}]}
        ),
    )
    check_export_archive(_write(members, tmp_path / "generator.pt2"))


@pytest.mark.parametrize(
    "expression",
    [
        "Symbol('__import__(\"os\")')",
        "s0.__class__",
        "s0[0]",
        "lambda: 0",
        "eval('1')",
        "Symbol('s1') # comment",
        "x",
        "Function('s1')",
        "'s1' 's2'",
        "Symbol('1.5e3' '_')",
        "Symbol(\"'s1'\")",
        "Float('1.5\\x00')",
    ],
)
def test_other_expressions_are_refused(clean, tmp_path, expression):
    members = _members(clean / "generator.pt2")
    _edit_json(
        members,
        "generator/models/model.json",
        lambda program: program.update(
            graph_module={**program["graph_module"], "extra": [{"expr_str": expression, "hint": None}]}
        ),
    )
    with pytest.raises(NetworkError, match="models/model.json has the shape expression"):
        check_export_archive(_write(members, tmp_path / "generator.pt2"))


@pytest.mark.parametrize(
    "guard, allowed",
    [
        ("(L['z'].size()[0] % 2) == 0", True),
        ("L['y'].size()[0] <= L['z'].size()[0]", True),
        ("2 <= L['z'].stride()[1] and not L['z'].size()[0] == 3", True),
        ("L['z'].size()[0] ** 2 == 4", True),
        ("L['z'].__class__ == 1", False),
        ("open('x')", False),
        ("L['z'].size()[0] == \"a\"", False),
        ("L[0](1)", False),
        ("torch.zeros(1)", False),
    ],
)
def test_guards_are_size_comparisons(clean, tmp_path, guard, allowed):
    members = _members(clean / "generator.pt2")
    _edit_json(members, "generator/models/model.json", lambda program: program.update(guards_code=[guard]))
    path = _write(members, tmp_path / "generator.pt2")
    if allowed:
        check_export_archive(path)
    else:
        with pytest.raises(NetworkError, match="has the guard"):
            check_export_archive(path)


@pytest.mark.parametrize(
    "target",
    [
        "torch.ops.aten.save.default",
        "torch.ops.aten.from_file.default",
        "torch.ops.aten.add",
        "torch.ops.quantized.add",
        "torch.ops.higher_order.invoke_leaf_function",
        "torchx.os.system",
        "_operator.methodcaller",
        "math.__loader__",
        "#custom:op",
        "torch.ops.aten.add.__call__",
    ],
)
def test_node_targets_outside_the_allowlist_are_refused(clean, tmp_path, target):
    members = _members(clean / "generator.pt2")
    _edit_json(
        members,
        "generator/models/model.json",
        lambda program: program["graph_module"]["graph"]["nodes"][0].update(target=target),
    )
    with pytest.raises(NetworkError, match="has the node target"):
        check_export_archive(_write(members, tmp_path / "generator.pt2"))


def test_a_compressed_tensor_is_refused(clean, tmp_path):
    """torch would expand it to whatever size it declares."""
    path = tmp_path / "generator.pt2"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in _members(clean / "generator.pt2").items():
            archive.writestr(name, data, zipfile.ZIP_DEFLATED if name.endswith("weight_0") else zipfile.ZIP_STORED)
    with pytest.raises(NetworkError, match="weight_0 is compressed"):
        check_export_archive(path)


def test_a_member_over_its_size_bound_is_refused_unread(clean, tmp_path):
    members = _members(clean / "generator.pt2")
    members["generator/byteorder"] = b"x" * 5000
    with pytest.raises(NetworkError, match="byteorder declares 5000 bytes"):
        check_export_archive(_write(members, tmp_path / "generator.pt2"))


# ------------------------------------------------------------------ mutated archives, as a property

DEFAULTDICT_SPEC = (
    '[1, {{"type": "collections.defaultdict", "context": {{"default_factory_module": "{module}", '
    '"default_factory_name": "factory", "dict_context": []}}, "children_spec": []}}]'
)
PAYLOAD_TEXTS = (
    "{code}",
    "{code} or Symbol('s1', positive=True, integer=True)",
    "{code} is None",
    "torch.os.mkdir",
    DEFAULTDICT_SPEC,
)


def _string_paths(value, prefix=()) -> list[tuple]:
    """The key paths of every string in a JSON value."""
    if isinstance(value, dict):
        return [path for key, item in value.items() for path in _string_paths(item, (*prefix, key))]
    if isinstance(value, list):
        return [path for index, item in enumerate(value) for path in _string_paths(item, (*prefix, index))]
    return [prefix] if isinstance(value, str) else []


@pytest.mark.slow
def test_mutated_archives_are_refused_or_load_and_never_run_a_payload(clean, tmp_path, payload):
    members = _members(clean / "generator.pt2")
    program = json.loads(members["generator/models/model.json"])
    paths = _string_paths(program)

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.sampled_from(paths), st.sampled_from(PAYLOAD_TEXTS), st.booleans())
    def check(path, text, use_pickle):
        mutated, holder = json.loads(json.dumps(program)), None
        holder = mutated
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = text.format(code=_touch_code(payload), module=PAYLOAD_MODULE)
        crafted = {**members, "generator/models/model.json": json.dumps(mutated).encode()}
        if use_pickle:
            crafted["generator/data/sample_inputs/model.pt"] = pickle.dumps(Touch(payload))
        archive = _write(crafted, tmp_path / "mutated" / "generator.pt2")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.suppress(Exception):
                load_network_file(archive, "generator")(torch.zeros(3, LATENT))
        assert not payload.exists() and PAYLOAD_MODULE not in sys.modules

    check()
