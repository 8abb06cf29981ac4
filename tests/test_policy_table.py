"""Every entry of the reviewed policy table holds in the installed libraries: the global resolves
to the kind recorded, and a class overrides exactly the loading hooks that were reviewed (a new
torch, numpy or omegaconf release that changes one fails here until someone reads it again)."""

from __future__ import annotations

import importlib
import warnings

import pytest

from ckpt_tool.model.checkpoint import Safety
from ckpt_tool.pickles.review import (
    Unresolved,
    candidate_lines,
    covered_names,
    hooks_of,
    observed,
    resolve,
)
from ckpt_tool.pickles.reviewed import Tier, parse_table, reviewed_table
from ckpt_tool.pickles.safety import classify, rate, torch_weights_only_globals

TABLE = reviewed_table()
REVIEWED = [entry for entry in TABLE.entries if entry.tier is not Tier.CODE]
CODE = [entry for entry in TABLE.entries if entry.tier is Tier.CODE]


def _split(full_name: str) -> tuple[str, str]:
    module, _, name = full_name.rpartition(".")
    return module, name


@pytest.mark.parametrize("entry", REVIEWED, ids=[entry.name for entry in REVIEWED])
def test_entry_matches_the_installed_library(entry) -> None:
    top = entry.name.split(".")[0]
    try:
        importlib.import_module(top)
    except ImportError:
        pytest.skip(f"{top} is not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy.core's deprecation shim
        try:
            kind, hooks = observed(entry, covered_names(TABLE))
        except Unresolved:
            pytest.fail(f"{entry.name} does not resolve: review the table")
    assert kind == entry.kind
    assert hooks == entry.hooks, "hooks changed: read their source, then review --update"


@pytest.mark.parametrize("entry", REVIEWED, ids=[entry.name for entry in REVIEWED])
def test_entry_is_rated_by_its_tier(entry) -> None:
    expected = Safety.DATA if entry.tier is Tier.DATA else Safety.REVIEWED
    assert classify(*_split(entry.name)) is expected
    assert rate(*_split(entry.name)).reason == entry.reason
    assert entry.reason and "TODO" not in entry.reason


def test_no_entry_repeats_torch_allow_list() -> None:
    assert not {entry.name for entry in TABLE.entries} & torch_weights_only_globals()


@pytest.mark.parametrize("entry", CODE, ids=[entry.name for entry in CODE])
def test_code_entry_and_what_it_covers_run_code(entry) -> None:
    assert entry.kind in ("module", "global")
    if entry.is_module:
        assert classify(entry.name, "anything") is Safety.CODE
    else:
        assert classify(*_split(entry.name)) is Safety.CODE


def test_every_torch_nn_module_class_is_reviewed() -> None:
    """``review --candidates`` lists nothing: each torch.nn module class has a line."""
    pytest.importorskip("torch")
    assert list(candidate_lines(TABLE)) == []


@pytest.mark.parametrize(("module", "name", "safety"), [
    pytest.param("torch", "_utils._rebuild_tensor_v2", Safety.CODE, id="dotted-path"),
    pytest.param("torch.serialization", "os", Safety.NOT_REVIEWED, id="unlisted-torch"),
    pytest.param("numpy.lib._datasource", "DataSource", Safety.CODE, id="code-module"),
    pytest.param("numpy.random._pickle", "__randomstate_ctor", Safety.DATA, id="data"),
    pytest.param("torch.nn.modules.linear", "Linear", Safety.REVIEWED, id="reviewed"),
    pytest.param("torch._C", "Generator", Safety.DATA, id="exact-entry-beats-code-module"),
    pytest.param("torch._C", "_get_tracing_state", Safety.CODE, id="code-module-member"),
    pytest.param("torch.utils.benchmark.utils.timer", "Timer", Safety.CODE, id="timer"),
    pytest.param("torch.utils.hooks", "RemovableHandle", Safety.NOT_REVIEWED,
                 id="upper-case-not-a-pass"),
    pytest.param("torch.optim.adam", "Adam", Safety.REVIEWED, id="optimizer"),
    pytest.param("collections", "OrderedDict", Safety.WEIGHTS_ONLY, id="torch-list"),
    pytest.param("logging", "FileHandler", Safety.CODE, id="stdlib-code"),
    pytest.param("json", "loads", Safety.NOT_REVIEWED, id="stdlib-not-reviewed"),
    pytest.param("__builtin__", "set", Safety.NOT_REVIEWED, id="python2-stdlib"),
    pytest.param("sympy.core.sympify", "sympify", Safety.CODE, id="sympy-where-defined"),
    pytest.param("jinja2.environment", "Template", Safety.NOT_REVIEWED, id="torch-requirement"),
    pytest.param("mypkg.models", "Net", Safety.CUSTOM, id="custom"),
    pytest.param("torchvision.models.resnet", "ResNet", Safety.CUSTOM, id="other-library"),
])
def test_rating(module: str, name: str, safety: Safety) -> None:
    assert classify(module, name) is safety


class Base:
    def __setstate__(self, state) -> None: ...

    @property
    def size(self) -> int:
        return 0

    @size.setter
    def size(self, value: int) -> None: ...


class Child(Base):
    def __init__(self) -> None: ...


def test_hooks_name_inherited_owners_and_skip_covered_ones() -> None:
    assert hooks_of(Child) == ("__init__", "__setstate__@Base", "set:size@Base")
    covered = {f"{Base.__module__}.{Base.__qualname__}"}
    assert hooks_of(Child, covered) == ("__init__",)


def test_resolve_walks_attributes_like_find_class() -> None:
    assert resolve("collections.OrderedDict").__name__ == "OrderedDict"
    with pytest.raises(Unresolved):
        resolve("collections.NoSuchThing")


@pytest.mark.parametrize("text", [
    "data builtins.dict class\n",
    "bogus builtins.dict class - reason\n",
    "data builtins.dict class - one\ndata builtins.dict class - two\n",
])
def test_malformed_tables_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_table(text)
