"""Write a loop tree back as mapping YAML that ``load_mapping_tree`` reads to the same tree."""

from __future__ import annotations

from typing import Mapping

import sympy
import yaml

from einsim.cost.tree import Branch, Chain, Keep, Loop, MappingTree, Run, Spatial


def size_text(expression) -> str | int:
    """A size expression in the mapping files' syntax (``ceil``, ``min``, ``max``)."""
    expression = sympy.sympify(expression)
    if expression.is_Integer:
        return int(expression)
    text = str(expression)
    for sympy_name, ours in (("ceiling(", "ceil("), ("Min(", "min("), ("Max(", "max(")):
        text = text.replace(sympy_name, ours)
    return text


def chain_document(chain: Chain) -> list:
    document = []
    for node in chain:
        if isinstance(node, Loop):
            entry = {"loop": node.variable}
            if node.tile != 1:
                entry["tile"] = size_text(node.tile)
            if node.start is not None:
                entry["start"] = node.start
            document.append(entry)
        elif isinstance(node, Spatial):
            entry = {"spatial": dict(node.axes)}
            if node.tile is not None:
                entry["tile"] = size_text(node.tile)
            if node.persistent:
                entry["persistent"] = True
            document.append(entry)
        elif isinstance(node, Keep):
            groups = node.groups or tuple((t,) for t in node.tensors)
            entry = {"keep": {node.level: ["/".join(g) for g in groups]}}
            if node.buffers != 1:
                entry["buffers"] = node.buffers
            document.append(entry)
        elif isinstance(node, Branch):
            document.append({node.kind: [chain_document(child) for child in node.children]})
        elif isinstance(node, Run):
            document.append({"run": list(node.einsums) if len(node.einsums) > 1
                             else node.einsums[0],
                             "unit": node.unit.split("+") if "+" in node.unit else node.unit})
    return document


def mapping_document(mapping: MappingTree, values: Mapping[str, float] | None = None,
                     cascade: str | None = None, hardware: str | None = None) -> dict:
    """The mapping as a YAML-ready dict; ``values`` become the parameters' defaults."""
    parameters = {}
    for name, parameter in mapping.parameters.items():
        entry = parameter.model_dump(exclude_none=True)
        if entry.get("domain"):
            entry["domain"] = {k: v for k, v in entry["domain"].items() if v is not None}
        if values and name in values:
            value = values[name]
            entry["default"] = int(value) if float(value).is_integer() else value
        parameters[name] = entry
    return {"name": mapping.name, "description": mapping.description,
            "cascade": cascade or mapping.cascade, "hardware": hardware or mapping.hardware,
            "parameters": parameters, "tree": chain_document(mapping.root)}


def dump_mapping(mapping: MappingTree, values: Mapping[str, float] | None = None,
                 cascade: str | None = None, hardware: str | None = None) -> str:
    return yaml.safe_dump(mapping_document(mapping, values, cascade, hardware),
                          sort_keys=False, default_flow_style=None, width=100)
