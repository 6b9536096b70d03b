"""What `dev kafka` and `dev registry` say about their local process: `up` prints the address alone
on stdout (for `$(...)`) and a note for a person on stderr, `down` whether one ran and what
`--purge` deleted, `status` a line or JSON. One shape, so the two groups answer alike."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from provisioner.cli.output import OutputFormat, console, err_console, print_json


def spinner(message: str) -> AbstractContextManager[object]:
    """A spinner on stderr while a dev process starts or stops."""
    return err_console.status(message, spinner="dots")


class Running(Protocol):
    """A dev process found alive (`devbroker.BrokerStatus`, `devregistry.RegistryStatus`)."""

    @property
    def pid(self) -> int: ...

    @property
    def log_file(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Running)


@dataclass(frozen=True, slots=True)
class DevService(Generic[R]):
    """One `dev` group's words: its name, its command group, what --purge deletes and how a
    running one is described."""

    noun: str
    group: str
    purged: str
    describe: Callable[[R], str]

    def report_up(self, address: str, note: str) -> None:
        err_console.print(note)
        console.print(address)

    def report_down(self, stopped: bool, purge: bool) -> None:
        what = "stopped" if stopped else "was not running"
        console.print(f"{self.noun} {what}" + (f"; {self.purged} deleted" if purge else ""))

    def report_status(self, found: R | None, output: OutputFormat, absent: dict[str, Any] | None = None) -> None:
        """`found`'s line or JSON; `absent` is the JSON of none (`{"running": false}` by default)."""
        if output is OutputFormat.json:
            print_json(found.to_dict() if found is not None else absent or {"running": False})
        elif found is None:
            console.print(f"{self.noun}: [bold]not running[/]  (start it with `provisioner dev {self.group} up`)")
        else:
            console.print(f"{self.noun}: {self.describe(found)} (pid {found.pid}, log {found.log_file})")
