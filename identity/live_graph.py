"""The guarded identity graph held in memory for live stitching: the rules of `identity.graph` and
`identity.stitch`, applied per node to the small set of identifiers one micro-batch can affect.

State is kept as raw evidence, not as decisions, so every guard can be re-decided exactly as a full batch
run would: per identifier the events seen with each user_id (count, first time), the non-user edges (pair /
record / probabilistic, with their first time), per carrier the strong values it was seen with and its guarded
co-occurrences without a user_id (`StitchConfig.guarded_links`), and each node's first sighting. Whether an identifier is
shared or contested, which user_id dominates it, and where the conflict and never-link cuts fall are derived
from that evidence on demand. An edge's presence depends only on its two ends' evidence, so the nodes whose
component can change are the batch's identifiers plus the raw components (before cuts) they touch, before
and after the batch (the closure argument of `identity.incremental`); `Subgraph` recomputes just those,
and `assign_ids` gives them their persistent ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from identity.config import NODE_TYPES, StitchConfig
from identity.ids import fresh_id, natural_id

Key = tuple[str, str]  # (identifier_type, identifier_value)
_PRIO = {t: i for i, t in enumerate(NODE_TYPES)}
_NO_TIME = 2**63 - 1


def order_key(key: Key, first_seen: int) -> tuple[int, int, str]:
    """Age order of nodes: first sighting, then identifier priority, then value (the batch node order)."""
    return first_seen, _PRIO[key[0]], key[1]


@dataclass
class Evidence:
    """Raw evidence of the deterministic graph (see the module docstring)."""

    config: StitchConfig
    first_seen: dict[Key, int] = field(default_factory=dict)  # microseconds since the epoch
    junk: set[Key] = field(default_factory=set)
    users: dict[Key, dict[str, list[int]]] = field(default_factory=dict)  # a -> user_id -> [events, first_ts]
    holders: dict[str, set[Key]] = field(default_factory=dict)  # user_id -> identifiers seen with it
    other: dict[Key, dict[Key, tuple[str, int]]] = field(default_factory=dict)  # symmetric: nbr -> (rule, ts)
    never: dict[Key, list[tuple[str, int]]] = field(default_factory=dict)  # node -> (constraint, side)
    strong: dict[Key, dict[str, set[str]]] = field(default_factory=dict)  # carrier -> strong type -> values
    guarded: dict[Key, dict[Key, int]] = field(default_factory=dict)  # symmetric: nbr -> first unauth ts

    def __post_init__(self) -> None:
        self._junk_values = frozenset(self.config.junk_values)
        self._blocked = frozenset(self.config.blocked_hashes())
        self._limits = dict(self.config.max_users)
        self._carriers = {a for a, _ in self.config.guarded_links}

    # --- evidence ---
    def is_junk_value(self, key: Key) -> bool:
        t, v = key
        return (t != "record" and v.strip(" ").lower() in self._junk_values) or key in self._blocked

    def see(self, key: Key, ts: int) -> bool:
        """Record a sighting; True when the node is new."""
        old = self.first_seen.get(key)
        if old is None:
            self.first_seen[key] = ts
            if self.is_junk_value(key):
                self.junk.add(key)
            return True
        if ts < old:
            self.first_seen[key] = ts
        return False

    def add_user_obs(self, key: Key, user: str, ts: int, n: int = 1) -> None:
        per = self.users.setdefault(key, {})
        got = per.get(user)
        if got is None:
            per[user] = [n, ts]
            self.holders.setdefault(user, set()).add(key)
        else:
            got[0] += n
            if ts < got[1]:
                got[1] = ts

    def add_edge(self, a: Key, b: Key, rule: str, ts: int) -> None:
        if a == b:
            return
        for x, y in ((a, b), (b, a)):
            nbrs = self.other.setdefault(x, {})
            old = nbrs.get(y)
            if old is None:
                nbrs[y] = (rule, ts)
            else:
                rules = old[0] if rule in old[0].split(",") else ",".join(sorted({*old[0].split(","), rule}))
                nbrs[y] = (rules, min(ts, old[1]))

    def add_strong_obs(self, carrier: Key, strong: Key, ts: int, auth: bool) -> None:
        """A guarded pair seen in one event: the strong value counts for the carrier; without a user_id
        (``auth`` False) it is also a guarded edge (`identity.graph`)."""
        self.strong.setdefault(carrier, {}).setdefault(strong[0], set()).add(strong[1])
        if not auth:
            for x, y in ((carrier, strong), (strong, carrier)):
                nbrs = self.guarded.setdefault(x, {})
                old = nbrs.get(y)
                nbrs[y] = ts if old is None else min(old, ts)

    # --- guards, decided from the evidence ---
    def is_shared(self, key: Key) -> bool:
        limit = self._limits.get(key[0], _NO_TIME)
        per = self.users.get(key)
        if per is not None and len(per) > limit:
            return True
        values = self.strong.get(key)
        return values is not None and any(len(v) > limit for v in values.values())

    def guarded_ok(self, a: Key, b: Key) -> bool:
        """A guarded edge stands while its carrier has one value of the strong type and neither end is shared."""
        carrier, strong = (a, b) if a[0] in self._carriers else (b, a)
        return (
            len(self.strong[carrier][strong[0]]) == 1
            and not self.is_shared(carrier)
            and not self.is_shared(strong)
        )

    def guarded_neighbours(self, key: Key) -> list[tuple[Key, int]]:
        """Neighbours by guarded edges that stand, with the edges' first time."""
        nbrs = self.guarded.get(key)
        if not nbrs or key in self.junk:
            return []
        return [(b, ts) for b, ts in nbrs.items() if self.guarded_ok(key, b)]

    def is_unlinking(self, key: Key) -> bool:
        """Junk or shared: the identifier links nobody (`identity.resolved.UNLINKING_GUARDS`)."""
        return key in self.junk or self.is_shared(key)

    def kept_user(self, key: Key) -> str | None:
        """The user_id an identifier keeps its edge to: the only one, or the dominant one when contested
        (most events, then earliest, then smallest id); None when it has none or is shared."""
        per = self.users.get(key)
        if not per or self.is_shared(key):
            return None
        if len(per) == 1:
            return next(iter(per))
        return min(per.items(), key=lambda kv: (-kv[1][0], kv[1][1], kv[0]))[0]

    def neighbours(self, key: Key) -> list[Key]:
        """Neighbours in the raw graph: kept user edges and non-user edges between unshared nodes."""
        if key in self.junk:
            return []
        out: list[Key] = []
        if key[0] == "user_id":
            out.extend(a for a in self.holders.get(key[1], ()) if self.kept_user(a) == key[1])
        else:
            u = self.kept_user(key)
            if u is not None:
                out.append(("user_id", u))
        nbrs = self.other.get(key)
        if nbrs and not self.is_shared(key):
            out.extend(b for b in nbrs if not self.is_shared(b))
        out.extend(b for b, _ in self.guarded_neighbours(key))
        return out

    def closure(self, seeds: set[Key]) -> set[Key]:
        """Every node in a raw component holding a seed (breadth-first over `neighbours`)."""
        seen = {s for s in seeds if s in self.first_seen}
        todo = list(seen)
        while todo:
            for b in self.neighbours(todo.pop()):
                if b not in seen:
                    seen.add(b)
                    todo.append(b)
        return seen


@dataclass
class Edge:
    a: Key
    b: Key
    rule: str
    ts: int
    cut: str | None = None  # None | conflict | never_link


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = p[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)

    def labels(self) -> list[int]:
        return [self.find(i) for i in range(len(self.parent))]


@dataclass
class Subgraph:
    """The components of a closed node set, with the conflict and never-link cuts of `identity.stitch`.

    ``nodes`` are in age order, so a component's label (its smallest index) is its anchor, the oldest node.
    """

    nodes: list[Key]
    edges: list[Edge]
    label: dict[Key, int]

    @classmethod
    def build(cls, ev: Evidence, closed: set[Key]) -> Subgraph:
        fs = ev.first_seen
        nodes = sorted(closed, key=lambda k: order_key(k, fs[k]))
        index = {k: i for i, k in enumerate(nodes)}
        user_of: dict[Key, Key] = {}
        edges: list[Edge] = []
        for a in nodes:
            if a in ev.junk or a[0] == "user_id":
                pass
            else:
                u = ev.kept_user(a)
                if u is not None:
                    user_of[a] = ("user_id", u)
                    edges.append(Edge(a, ("user_id", u), "user", ev.users[a][u][1]))
            nbrs = ev.other.get(a)
            if nbrs and not ev.is_shared(a):
                ia = index[a]
                for b, (rule, ts) in nbrs.items():
                    if not ev.is_shared(b) and index[b] > ia:  # a shared end is outside the closure
                        edges.append(Edge(a, b, rule, ts))
            for b, ts in ev.guarded_neighbours(a):
                if index[b] > index[a]:
                    edges.append(Edge(a, b, "guarded", ts))
        n = len(nodes)
        raw = _components(n, index, edges)
        # conflict guard (`identity.stitch.components`): in a component holding several user_ids, cut every
        # edge whose ends hold different user_ids, or only one of which holds one, except the edge giving an
        # identifier its user_id (its kept user edge, else the only probabilistic link naming a user_id)
        users = _count_users(nodes, raw)
        named: dict[Key, set[Key]] = {}
        for e in edges:
            if user_of.get(e.a) == e.b or user_of.get(e.b) == e.a:
                continue
            if (e.a[0] == "user_id") != (e.b[0] == "user_id"):  # a probabilistic link naming a user_id
                ident, user = (e.b, e.a) if e.a[0] == "user_id" else (e.a, e.b)
                named.setdefault(ident, set()).add(user)

        def holder(k: Key) -> Key | None:
            if k[0] == "user_id":
                return k
            if k in user_of:
                return user_of[k]
            linked = named.get(k)
            return next(iter(linked)) if linked and len(linked) == 1 else None

        for e in edges:
            ha, hb = holder(e.a), holder(e.b)
            if ha == e.b or hb == e.a:
                continue  # the edge giving an identifier its user_id
            if users.get(raw[index[e.a]], 0) > 1 and (ha or hb) and ha != hb:
                e.cut = "conflict"
        _never_link_cut(ev, nodes, index, edges)
        label = _components(n, index, [e for e in edges if e.cut is None])
        return cls(nodes, edges, {k: label[i] for i, k in enumerate(nodes)})


def _components(n: int, index: dict[Key, int], edges: list[Edge]) -> list[int]:
    uf = _UnionFind(n)
    for e in edges:
        uf.union(index[e.a], index[e.b])
    return uf.labels()


def _count_users(nodes: list[Key], labels: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for k, lab in zip(nodes, labels, strict=True):
        if k[0] == "user_id":
            out[lab] = out.get(lab, 0) + 1
    return out


def _never_link_cut(ev: Evidence, nodes: list[Key], index: dict[Key, int], edges: list[Edge]) -> None:
    """Cut so that no component holds both sides of a constraint (`identity.stitch._never_link_cut`)."""
    constraints: dict[str, dict[Key, int]] = {}
    for k in nodes:
        for cid, side in ev.never.get(k, ()):
            constraints.setdefault(cid, {})[k] = side
    alive = [e.cut is None for e in edges]
    never = [False] * len(edges)
    for cid in sorted(constraints):
        side = constraints[cid]
        for i, e in enumerate(edges):
            sa, sb = side.get(e.a), side.get(e.b)
            if alive[i] and sa is not None and sb is not None and sa != sb:
                never[i] = True
        keep = [e for i, e in enumerate(edges) if alive[i] and not never[i]]
        labels = _components(len(nodes), index, keep)
        sides: dict[int, set[int]] = {}
        for k, s in side.items():
            sides.setdefault(labels[index[k]], set()).add(s)
        both = {lab for lab, s in sides.items() if len(s) == 2}
        if both:
            for i, e in enumerate(edges):
                one_end = (e.a in side) != (e.b in side)
                if alive[i] and one_end and labels[index[e.a]] in both:
                    never[i] = True
    for i, e in enumerate(edges):
        if never[i]:
            e.cut = "never_link"


def assign_ids(sub: Subgraph, prior: dict[Key, str]) -> tuple[dict[Key, str], dict[str, str]]:
    """Persistent ids exactly as `identity.ids.assign_ids`: a previous id stays with the component holding its
    oldest identifier; of several, the oldest cluster's survives and the others become aliases; a component
    with none takes its natural id (or a split id when that one survives elsewhere)."""
    holder: dict[str, int] = {}
    survivor: dict[int, str] = {}
    for k in sub.nodes:  # age order: the first sighting of an id is its oldest identifier
        p = prior.get(k)
        if p is not None and p not in holder:
            lab = sub.label[k]
            holder[p] = lab
            survivor.setdefault(lab, p)
    taken = set(survivor.values())
    ids: dict[int, str] = {}
    out: dict[Key, str] = {}
    for k in sub.nodes:
        lab = sub.label[k]
        cid = ids.get(lab)
        if cid is None:
            cid = survivor.get(lab)
            if cid is None:
                cid = fresh_id(natural_id(*sub.nodes[lab]), taken)
            ids[lab] = cid
        out[k] = cid
    aliases = {p: survivor[lab] for p, lab in holder.items() if survivor[lab] != p}
    return out, aliases
