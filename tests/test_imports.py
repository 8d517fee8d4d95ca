"""The library's import structure: no module cycles, and a core that knows no family or model."""

import graphlib

import pytest

from tests.import_graph import module_graph

CORE = ("lwgen.train", "lwgen.export", "lwgen.eval.evaluate")


def test_no_module_imports_itself_through_others():
    graphlib.TopologicalSorter(module_graph()).prepare()  # raises CycleError on a cycle


@pytest.mark.parametrize("core", CORE)
def test_core_imports_no_family_and_no_model(core):
    graph = module_graph()
    for module, imports in graph.items():
        if module == core or module.startswith(core + "."):
            known = {m for m in imports if m.startswith(("lwgen.models", "lwgen.families"))}
            assert known <= {"lwgen.families.registry"}, module


def test_registry_imports_only_errors():
    assert module_graph()["lwgen.families.registry"] <= {"lwgen.errors"}
