"""The order of a dataflow's components: each component's inputs before it, and the cycles that
make such an order impossible. A graph maps each component to the components it reads."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

Graph = Mapping[str, Sequence[str]]


def topological(graph: Graph) -> list[str]:
    """Every component after its inputs; ties keep the graph's own order. Inputs that are not
    in the graph are ignored, and so are the members of cycles (see `cycles`)."""
    rank = {id: n for n, id in enumerate(graph)}
    waiting = {id: {i for i in inputs if i in graph} for id, inputs in graph.items()}
    readers: dict[str, list[str]] = {id: [] for id in graph}
    for id, inputs in waiting.items():
        for input in inputs:
            readers[input].append(id)
    ready = [(rank[id], id) for id, inputs in waiting.items() if not inputs]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, id = heapq.heappop(ready)
        order.append(id)
        for reader in readers[id]:
            waiting[reader].discard(id)
            if not waiting[reader]:
                heapq.heappush(ready, (rank[reader], reader))
    return order


def cycles(graph: Graph) -> list[list[str]]:
    """Cycles of inputs, each as a path that starts and ends with the same id (`["a", "b",
    "a"]`: a reads b, which reads a); a component is in one reported cycle at most."""
    found: list[list[str]] = []
    placed: set[str] = set()
    for start in graph:
        if start in placed:
            continue
        path = _cycle_from(start, graph)
        if path:
            found.append(path)
            placed.update(path)
    return found


def _cycle_from(start: str, graph: Graph) -> list[str]:
    """The shortest path of inputs from `start` back to itself ([] when there is none)."""
    parents: dict[str, str] = {}
    queue = [start]
    while queue:
        id = queue.pop(0)
        for input in graph.get(id, ()):
            if input == start:
                path = [id]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if input in graph and input not in parents:
                parents[input] = id
                queue.append(input)
    return []


def readers_of(graph: Graph, ids: set[str]) -> set[str]:
    """`ids` and every component reading one of them, directly or not."""
    found = set(ids)
    changed = True
    while changed:
        changed = False
        for id, inputs in graph.items():
            if id not in found and found.intersection(inputs):
                found.add(id)
                changed = True
    return found
