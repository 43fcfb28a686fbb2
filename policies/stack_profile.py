"""What kind of stack the policies are judging: production, ephemeral, marked for debug routes.

The pack reads the same stack configuration the program reads (CrossGuard hands the stack's
config, project and stack name to the pack), but a production-named stack is production
whatever its config says: marking `prod` ephemeral must not switch its data protection off.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

import contract

# The program refuses `ephemeral` on these names; the pack never treats them as ephemeral.
PRODUCTION_STACK = contract.PRODUCTION_STACK


@dataclass(frozen=True)
class StackProfile:
    project: str
    stack: str
    # Config `ephemeral: true` on a stack whose name is not a production name.
    ephemeral: bool
    # Config `debugRoutes: true` on a stack whose name is not a production name.
    debug_routes_marked: bool
    # Config `workersSubdomain`: the account's <name>.workers.dev, part of the Worker's host.
    workers_subdomain: str = ""

    @property
    def production(self) -> bool:
        return contract.is_production_stack(self.stack)

    @classmethod
    def of(
        cls,
        project: str,
        stack: str,
        *,
        ephemeral: bool = False,
        debug_routes: bool = False,
        workers_subdomain: str = "",
    ) -> StackProfile:
        production = contract.is_production_stack(stack)
        return cls(
            project=project,
            stack=stack,
            ephemeral=ephemeral and not production,
            debug_routes_marked=debug_routes and not production,
            workers_subdomain=workers_subdomain.strip().lower(),
        )

    @classmethod
    def from_runtime(cls) -> StackProfile:
        """The profile of the stack being previewed or updated, from the engine's settings."""
        config = pulumi.Config()
        return cls.of(
            pulumi.get_project(),
            pulumi.get_stack(),
            ephemeral=_flag(config, "ephemeral"),
            debug_routes=_flag(config, "debugRoutes"),
            workers_subdomain=config.get("workersSubdomain") or "",
        )


def _flag(config: pulumi.Config, key: str) -> bool:
    # A malformed flag counts as off: the program refuses it anyway, and "off" is the side
    # that keeps protection on and debug routes out.
    return contract.parse_flag(config.get(key), False) is True
