"""ProsQA-style DAG reachability questions (COCONUT paper, App. A.2, Algorithm 1).

Nodes 0 and 1 are seeds. Each new node draws Poisson(`mean_parents`) parents, with probability
`p_avoid` each restricted to nodes outside node 1's (resp. node 0's) descendants, sampled with
weight 1.5*depth + 1 so deep chains are favoured; labels propagate by bitwise OR (1: reachable
from node 0, 2: from node 1). Parentless nodes are people, the others concepts. The question
asks whether the root (node 0, or node 1 with the labels swapped) is a target leaf (reachable
from it only) or a distractor leaf (reachable from the other seed only). Steps are the edges of
one shortest path; graphs whose shortest path falls outside [min_path, max_path] are redrawn.
`cot="concepts"` writes the path as its nodes instead, the root and the first concept in the
first step ("Tom rompus", then "kerpus", ...): each next node is then a lookup from the token
just written (the CPU-sized variant; see the ProntoQA generator). `cot="nodes"` writes the same
tokens with the root as a step of its own ("Tom", "rompus", "kerpus"): a CoT model trained on one
serves the other, and COCONUT's stage 1 replaces the root alone. `cot="concepts_only"` leaves the
root out ("rompus", "kerpus", ...), as the ProntoQA chains do: the first concept is then looked up
from the question's "Is Tom a ...". (Both were tried against COCONUT's stage-1 drop: RESULTS.md.)
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import itertools

import numpy as np

from lrm_jax.data.generators.names import CONCEPTS, PEOPLE
from lrm_jax.data.records import Graph, Record


COT_FORMATS = ("sentences", "concepts", "nodes", "concepts_only")


@dataclasses.dataclass(frozen=True)
class ProsQAConfig:
    min_nodes: int = 18  # the paper's graphs: 23 nodes, 36 edges on average
    max_nodes: int = 28
    mean_parents: float = 1.5
    p_avoid: float = 0.35
    min_path: int = 3
    max_path: int = 6
    max_tries: int = 1000
    # "concepts": the path's nodes, one step per edge; "nodes": one per node; "concepts_only": no root
    cot: str = "sentences"

    def __post_init__(self):
        if not 4 <= self.min_nodes <= self.max_nodes:
            raise ValueError("prosqa: need 4 <= min_nodes <= max_nodes")
        if self.max_nodes > len(CONCEPTS) + len(PEOPLE):
            raise ValueError(f"prosqa: max_nodes is limited to {len(CONCEPTS) + len(PEOPLE)} names")
        if not 1 <= self.min_path <= self.max_path:
            raise ValueError("prosqa: need 1 <= min_path <= max_path")
        if self.cot not in COT_FORMATS:
            raise ValueError(f"prosqa: cot must be one of {COT_FORMATS}, got {self.cot!r}")


def _shortest_path(edges_out, src, dst):
    prev = {src: None}
    queue = collections.deque([src])
    while queue:
        u = queue.popleft()
        if u == dst:
            path = [u]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])
            return path[::-1]
        for v in edges_out[u]:
            if v not in prev:
                prev[v] = u
                queue.append(v)
    return None


def _weighted_sample(rng: np.random.Generator, pool: list[int], weights: list[float], k: int) -> list[int]:
    """`rng.choice(pool, size=k, replace=False, p=weights / sum)`, draw for draw, in plain Python.

    numpy's call costs ~40 us of array set-up for pools of a few nodes, most of the generator's
    time; this one reads the same uniforms in the same order and maps them through the same
    renormalised cdf, so the records (and every recorded result) stay as they were. Exact when
    the weights' sum is (here multiples of 0.5), since numpy sums pairwise and this sequentially.
    """
    total = sum(weights)
    p = [w / total for w in weights]
    found: list[int] = []
    while len(found) < k:  # numpy's rounds: draw the missing count, keep first hits of new slots
        xs = rng.random(k - len(found))
        for i in found:
            p[i] = 0.0
        cdf = list(itertools.accumulate(p))
        cdf = [c / cdf[-1] for c in cdf]
        seen = set(found)
        for x in xs:
            j = bisect.bisect_right(cdf, x)
            if j not in seen:
                seen.add(j)
                found.append(j)
    return [pool[j] for j in found]


def _draw_graph(cfg: ProsQAConfig, rng: np.random.Generator):
    n = int(rng.integers(cfg.min_nodes, cfg.max_nodes + 1))
    label = [1, 2] + [0] * (n - 2)
    depth = [0] * n
    edges = []
    for j in range(2, n):
        k = int(rng.poisson(cfg.mean_parents))
        u = rng.random()
        if u < cfg.p_avoid:
            pool = [i for i in range(j) if not label[i] & 2]
        elif u < 2 * cfg.p_avoid:
            pool = [i for i in range(j) if not label[i] & 1]
        else:
            pool = list(range(j))
        k = min(k, len(pool))
        if k:
            for i in _weighted_sample(rng, pool, [1.5 * depth[i] + 1 for i in pool], k):
                edges.append((i, j))
                label[j] |= label[i]
                depth[j] = max(depth[j], depth[i] + 1)
    return n, edges, label


def _one(cfg: ProsQAConfig, rng: np.random.Generator) -> Record | None:
    n, edges, label = _draw_graph(cfg, rng)
    has_parent = {j for _, j in edges}
    has_child = {i for i, _ in edges}
    leaves = [v for v in range(2, n) if v not in has_child and v in has_parent]
    root = int(rng.integers(2))
    own, other = (1, 2) if root == 0 else (2, 1)
    targets = [v for v in leaves if label[v] == own]
    negs = [v for v in leaves if label[v] == other]
    if not targets or not negs:
        return None
    target, neg = int(rng.choice(targets)), int(rng.choice(negs))
    edges_out = collections.defaultdict(list)
    for i, j in edges:
        edges_out[i].append(j)
    path = _shortest_path(edges_out, root, target)
    if path is None or not cfg.min_path <= len(path) - 1 <= cfg.max_path:
        return None
    people = [v for v in range(n) if v not in has_parent]
    person_names = rng.permutation(PEOPLE)[: len(people)]
    concept_names = rng.permutation(CONCEPTS)[: n - len(people)]
    names, pi, ci = [None] * n, 0, 0
    for v in range(n):
        if v in people:
            names[v], pi = str(person_names[pi]), pi + 1
        else:
            names[v], ci = str(concept_names[ci]), ci + 1

    def sentence(i, j):
        return f"{names[i]} is a {names[j]}." if i in people else f"Every {names[i]} is a {names[j]}."

    order = rng.permutation(len(edges))
    options = [names[target], names[neg]]
    if rng.random() < 0.5:
        options.reverse()
    question = " ".join(sentence(*edges[k]) for k in order)
    question += f" Is {names[root]} a {options[0]} or {options[1]}?"
    if cfg.cot == "concepts":
        steps = (f"{names[root]} {names[path[1]]}", *(names[v] for v in path[2:]))
    elif cfg.cot == "nodes":
        steps = tuple(names[v] for v in path)
    elif cfg.cot == "concepts_only":
        steps = tuple(names[v] for v in path[1:])
    else:
        steps = tuple(sentence(path[k], path[k + 1]) for k in range(len(path) - 1))
    graph = Graph(tuple(names), tuple(edges), root, target, neg)
    return Record(question, steps, f"{names[root]} is a {names[target]}.", graph)


def generate_prosqa(cfg: ProsQAConfig, n: int, seed: int) -> list[Record]:
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        for _ in range(cfg.max_tries):
            rec = _one(cfg, rng)
            if rec is not None:
                out.append(rec)
                break
        else:
            raise RuntimeError(f"prosqa: no valid graph in {cfg.max_tries} tries; loosen {cfg}")
    return out
