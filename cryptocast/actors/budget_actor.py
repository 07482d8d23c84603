"""The REST budget of one node (one egress IP) as a Ray actor, and the pairs' view of it."""

from __future__ import annotations

import ray

from cryptocast.actors.budget import WEIGHT_LIMIT_PER_MINUTE, RateBudget
from cryptocast.actors.nodes import NAMESPACE, budget_name, pinned

BUDGET_CPUS = 0.01


@ray.remote(num_cpus=BUDGET_CPUS, max_restarts=-1)
class BudgetActor:
    """One node's REST weight and connection budget (see :class:`RateBudget`)."""

    def __init__(self, weight_limit: int) -> None:
        self.budget = RateBudget(weight_limit=weight_limit)

    def reserve(self, weight: int, backfill: bool = False) -> float:
        return self.budget.reserve(weight, backfill)

    def observe(self, used_weight: int | None) -> None:
        self.budget.observe(used_weight)

    def penalize(self, retry_after_s: float) -> None:
        self.budget.penalize(retry_after_s)

    def reserve_connection(self) -> float:
        return self.budget.reserve_connection()

    def snapshot(self) -> dict:
        return self.budget.snapshot()


class RayBudget:
    """Ingestion's view of a budget actor."""

    def __init__(self, handle: ray.actor.ActorHandle) -> None:
        self.handle = handle

    async def reserve(self, weight: int, backfill: bool = False) -> float:
        return await self.handle.reserve.remote(weight, backfill)

    async def observe(self, used_weight: int | None) -> None:
        if used_weight is not None:
            self.handle.observe.remote(used_weight)  # fire and forget: it only raises the count

    async def penalize(self, retry_after_s: float) -> None:
        await self.handle.penalize.remote(retry_after_s)

    async def reserve_connection(self) -> float:
        return await self.handle.reserve_connection.remote()


def node_budget(node_id: str, weight_limit: int = WEIGHT_LIMIT_PER_MINUTE) -> ray.actor.ActorHandle:
    """The budget of ``node_id``'s IP, started on that node by whoever asks first."""
    return BudgetActor.options(  # type: ignore[attr-defined]  # mypy keeps a decorated class's type: @ray.remote made it an ActorClass
        name=budget_name(node_id),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        scheduling_strategy=pinned(node_id),
    ).remote(weight_limit)
