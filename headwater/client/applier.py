"""Appliers: make a server hold what a definition declares, as the Ascend SDK's do, after
checking the whole definition and showing the plan first.

`DataServiceApplier(client).apply(data_service)` plans, then (unless `dry_run`) applies:
credentials, connections and dataflows first, then each dataflow's components with their
inputs first, then deletions of what the definition does not declare (readers before what they
read, components before the connections they use, connections before their credentials).

    >>> plan = DataServiceApplier(client).apply(data_service, dry_run=True)  # doctest: +SKIP
    >>> print(plan)

Planning reads the server only. A problem found then (a cycle, an input or connection that is
not there, SQL that reads a table that is not an input, code that does not compile, a secret
that was not given) is listed with all the others in one `PlanError`, before anything is sent.
A component whose kind changes is deleted and created again ("replace"), with the components
reading it, since the server cannot change a kind and cannot delete a component that is read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from headwater.client.client import Client
from headwater.client.definitions import Dataflow, DataService
from headwater.client.errors import APIError, ClientError
from headwater.client.plan import ApplyError, Plan, PlanError, Step
from headwater.client.planner import Planner

__all__ = ["DataServiceApplier", "DataflowApplier", "apply_all", "execute", "main"]


class DataServiceApplier:
    """Applies a `DataService` definition: the data service, its credentials, connections,
    dataflows and their components.

    Example:
        >>> DataServiceApplier(Client()).apply(data_service, delete=False)  # doctest: +SKIP
    """

    def __init__(self, client: Client) -> None:
        self.client = client

    def plan(self, data_service: DataService, *, delete: bool = True) -> Plan:
        """The changes that would make the server match `data_service` (nothing is changed).

        Args:
            delete: delete the dataflows, components, connections and credentials of the data
                service that the definition does not declare.

        Raises:
            PlanError: the definition cannot be applied; every problem is listed.
        """
        planner = Planner(self.client, data_service.id)
        planner.data_service(data_service, delete=delete)
        return planner.finish()

    def apply(
        self, data_service: DataService, *, delete: bool = True, dry_run: bool = False
    ) -> Plan:
        """Plan (see `plan`), then unless `dry_run` apply the plan; returns it.

        Raises:
            PlanError: nothing was changed.
            ApplyError: the server refused a step; the steps before it were applied.
        """
        plan = self.plan(data_service, delete=delete)
        if not dry_run:
            execute(self.client, plan)
        return plan


class DataflowApplier:
    """Applies one `Dataflow` definition to a data service that exists; connections and
    credentials are the server's.

    Example:
        >>> DataflowApplier(Client()).apply("sales", dataflow, dry_run=True)  # doctest: +SKIP
    """

    def __init__(self, client: Client) -> None:
        self.client = client

    def plan(self, data_service_id: str, dataflow: Dataflow, *, delete: bool = True) -> Plan:
        """The changes that would make the dataflow match `dataflow` (nothing is changed);
        with `delete`, its components that `dataflow` does not declare are deleted.

        Raises:
            PlanError: the definition cannot be applied; every problem is listed.
        """
        planner = Planner(self.client, data_service_id)
        planner.one_dataflow(dataflow, delete=delete)
        return planner.finish()

    def apply(
        self,
        data_service_id: str,
        dataflow: Dataflow,
        *,
        delete: bool = True,
        dry_run: bool = False,
    ) -> Plan:
        """Plan (see `plan`), then unless `dry_run` apply the plan; returns it."""
        plan = self.plan(data_service_id, dataflow, delete=delete)
        if not dry_run:
            execute(self.client, plan)
        return plan


Target = DataService | tuple[str, Dataflow]


def apply_all(
    client: Client, targets: Sequence[Target], *, delete: bool = True, dry_run: bool = False
) -> list[Plan]:
    """Plan every data service and (data service id, dataflow) pair first, so that an error in
    any of them changes nothing, then apply each plan in turn; returns the plans.

    Raises:
        PlanError: listing the errors of every target; nothing was changed.
    """
    plans, errors = [], []
    seen: set[str] = set()
    for target in targets:
        key = target.id if isinstance(target, DataService) else f"{target[0]}/{target[1].id}"
        if key in seen:
            errors.append(f"{key}: declared more than once")
            continue
        seen.add(key)
        try:
            if isinstance(target, DataService):
                plans.append(DataServiceApplier(client).plan(target, delete=delete))
            else:
                plans.append(DataflowApplier(client).plan(*target, delete=delete))
        except PlanError as exc:
            errors.extend(exc.errors)
    if errors:
        raise PlanError(errors)
    if not dry_run:
        for plan in plans:
            execute(client, plan)
    return plans


def execute(client: Client, plan: Plan) -> None:
    """Make the calls of `plan`, in order.

    Raises:
        ApplyError: the server refused one; the calls before it were made.
    """
    for done, step in enumerate(plan.steps):
        try:
            _call(client, step)
        except APIError as exc:
            raise ApplyError(
                f"{step.call} of {step.change.path} ({step.change.label}) was refused after "
                f"{done} of {len(plan.steps)} step(s) were applied: {exc.message}",
                step.change,
                done,
            ) from exc


def _call(client: Client, step: Step) -> None:
    change, call = step.change, step.call
    parts = change.path.split("/")  # ids and credential names hold no "/"
    ds = parts[0]
    desired: Any = change.desired
    if change.resource == "data service":
        if call == "create":
            client.create_data_service(desired)
        else:
            client.update_data_service(desired)
    elif change.resource == "credential":
        if call == "delete":
            client.delete_credential(ds, parts[1])
        else:
            assert change.secret is not None
            client.put_credential(ds, parts[1], change.secret)
    elif change.resource == "connection":
        if call == "delete":
            client.delete_connection(ds, parts[1])
        else:
            (client.create_connection if call == "create" else client.update_connection)(
                ds, desired
            )
    elif change.resource == "dataflow":
        if call == "delete":
            client.delete_dataflow(ds, parts[1])
        else:
            (client.create_dataflow if call == "create" else client.update_dataflow)(ds, desired)
    elif call == "delete":
        client.delete_component(ds, parts[1], parts[2])
    else:
        (client.create_component if call == "create" else client.update_component)(
            ds, parts[1], desired
        )


# -- the __main__ of a definition file ----------------------------------------------------------


def main(
    definition: DataService | Dataflow,
    *,
    data_service_id: str | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    """Apply a definition from the command line of its file, with a `Client()` configured by
    the environment (HEADWATER_HOSTNAME, HEADWATER_ACCESS_KEY_ID, ...); prints the plan, and
    exits 1 with one message when it cannot be applied. Options: --dry-run, --no-delete.

    Example (the end of a definition file):
        >>> if __name__ == "__main__":                                     # doctest: +SKIP
        ...     main(data_service)
    """
    parser = argparse.ArgumentParser(description="Apply this definition to a Headwater server.")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    parser.add_argument(
        "--no-delete",
        action="store_true",
        help="keep what the server has and the definition does not declare",
    )
    args = parser.parse_args(argv)
    if isinstance(definition, Dataflow):
        if data_service_id is None:
            parser.error("a Dataflow is applied to a data service: pass data_service_id")
        target: Target = (data_service_id, definition)
    else:
        target = definition
    try:
        with Client() as client:
            plan = apply_all(client, [target], delete=not args.no_delete, dry_run=True)[0]
            print(plan)
            if not args.dry_run:
                execute(client, plan)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print("Dry run: nothing was changed." if args.dry_run else "Applied.")
