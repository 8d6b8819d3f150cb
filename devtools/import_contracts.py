"""Two import-linter contract types of our own, run by `make test` (see pyproject.toml):

- no_cycles: no import cycle between any two modules of the project, imports inside
  functions included (grimp reads those too), so a cycle cannot hide behind a lazy import;
- published_face: a feature's modules are imported from outside the feature only through
  its published module(s) (chat's conversation module), so no feature reaches into
  another's worker, services or views.
"""

from __future__ import annotations

from typing import Any

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


def _strings(value: Any) -> list[str]:
    """A contract's list option, as read from the configuration (the class attribute is its field)."""
    return [str(item) for item in (value or [])]


def _strongly_connected(graph: ImportGraph, modules: set[str]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph may be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for root in sorted(modules):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = []
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work.append((root, sorted(graph.find_modules_directly_imported_by(root) & modules)))
        while work:
            node, pending = work[-1]
            if pending:
                child = pending.pop()
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(graph.find_modules_directly_imported_by(child) & modules)))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


class NoCyclesContract(Contract):
    type_name = "no_cycles"

    packages = fields.ListField(subfield=fields.StringField())
    exclude = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        excluded = tuple(_strings(self.exclude))
        modules = {module for package in _strings(self.packages)
                   for module in graph.find_descendants(package) | {package}
                   if not any(module == name or module.startswith(name + ".") for name in excluded)}
        # A package's __init__ importing its own modules is not a cycle between modules.
        cycles = [group for group in _strongly_connected(graph, modules)
                  if not all(a.startswith(b + ".") or b.startswith(a + ".") or a == b for a in group for b in group)]
        return ContractCheck(kept=not cycles, metadata={"cycles": cycles})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for group in check.metadata["cycles"]:
            output.print_error("Import cycle: " + " <-> ".join(group))
            output.new_line()


class PublishedFaceContract(Contract):
    type_name = "published_face"

    features = fields.ListField(subfield=fields.StringField())
    published = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        published = set(_strings(self.published))
        breaches: list[dict[str, Any]] = []
        for feature in _strings(self.features):
            for module in sorted(graph.find_descendants(feature) | {feature}):
                if module in published or module == feature:
                    continue
                for importer in sorted(graph.find_modules_that_directly_import(module)):
                    # Historic migrations name functions of the models they were made from.
                    if importer == feature or importer.startswith(feature + ".") or ".migrations." in importer:
                        continue
                    details = graph.get_import_details(importer=importer, imported=module)
                    lines = ", ".join(str(d["line_number"]) for d in details)
                    breaches.append({"importer": importer, "imported": module, "lines": lines})
        return ContractCheck(kept=not breaches, metadata={"breaches": breaches})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for breach in check.metadata["breaches"]:
            output.print_error(f"{breach['importer']} imports {breach['imported']} (line {breach['lines']}): "
                               "only the feature's published module may be imported from outside it.")
        output.new_line()
