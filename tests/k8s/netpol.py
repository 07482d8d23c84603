"""A NetworkPolicy evaluator, Kubernetes' semantics for the fields the manifests use.

A connection is allowed when the source may send it (the source's namespace has no policy that
selects it for egress, or one of those policies has an egress rule matching the destination and
port) and the destination may receive it (likewise for ingress). Rules: an absent ``from``/``to``
matches every peer, an absent ``ports`` every port; a peer is a ``podSelector`` (this namespace),
a ``namespaceSelector`` (with a ``podSelector``: those pods there), or an ``ipBlock`` (addresses
outside the cluster's pods). Named ports and ``endPort`` are refused rather than guessed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Endpoint:
    name: str
    namespace: str | None = None  # None: an address outside the cluster
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    namespace_labels: dict[str, str] = field(default_factory=dict, hash=False)
    address: str = ""  # for addresses outside the cluster

    @classmethod
    def pod(cls, name: str, namespace: str, labels: dict[str, str]) -> Endpoint:
        return cls(name, namespace, labels, {"kubernetes.io/metadata.name": namespace})


def _expression(expression: dict, labels: dict[str, str]) -> bool:
    key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise ValueError(f"unknown selector operator {operator!r}")


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """A LabelSelector: ``matchLabels`` and ``matchExpressions``; the empty one selects everything."""
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()) and all(
        _expression(e, labels) for e in selector.get("matchExpressions", [])
    )


def _peer_matches(peer: dict, policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        if other.namespace is not None:
            return False
        address = ipaddress.ip_address(other.address)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector", {}), other.labels)


def _port_matches(rule: dict, port: int, protocol: str) -> bool:
    if "ports" not in rule:
        return True
    for entry in rule["ports"]:
        if not isinstance(entry.get("port"), int) or "endPort" in entry:
            raise ValueError(f"only numeric single ports are evaluated: {entry}")
        if entry["port"] == port and entry.get("protocol", "TCP") == protocol:
            return True
    return False


def _types(policy: dict) -> list[str]:
    spec = policy["spec"]
    return spec.get("policyTypes") or ["Ingress"] + (["Egress"] if "egress" in spec else [])


class Evaluator:
    def __init__(self, policies: list[dict]) -> None:
        self.policies = policies

    def _selecting(self, pod: Endpoint, direction: str) -> list[dict]:
        return [
            p
            for p in self.policies
            if p["metadata"]["namespace"] == pod.namespace
            and direction in _types(p)
            and selects(p["spec"]["podSelector"], pod.labels)
        ]

    def _side_allows(self, pod: Endpoint, other: Endpoint, port: int, protocol: str, direction: str) -> bool:
        policies = self._selecting(pod, direction)
        if not policies:
            return True
        key, peers = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        return any(
            _port_matches(rule, port, protocol)
            and (
                peers not in rule
                or any(_peer_matches(p, policy["metadata"]["namespace"], other) for p in rule[peers])
            )
            for policy in policies
            for rule in policy["spec"].get(key, [])
        )

    def allows(self, source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP") -> bool:
        sends = source.namespace is None or self._side_allows(source, destination, port, protocol, "Egress")
        receives = destination.namespace is None or self._side_allows(
            destination, source, port, protocol, "Ingress"
        )
        return sends and receives
