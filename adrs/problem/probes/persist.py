"""The persistent-state probe: a token written by one evaluation, looked for by the next."""

from __future__ import annotations

import os
import sys
from typing import Any

from adrs.problem.probes.core import Probe

PERSIST_NAME = ".adrs_probe_"
SHM_KEY = 0x41445250  # "ADRP": a fixed SysV key both evaluations use


class PersistGame:
    """Write a token everywhere a later evaluation could find it (`persist-write`), or look
    for the earlier evaluation's token there (`persist-read`)."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.token: str = probe.config["token"]
        self.reading = probe.mode == "persist-read"
        self.places: list[str] = []
        self.refused: list[str] = []

    def stats(self) -> dict[str, int]:
        return {"places": len(self.places), "refused": len(self.refused)}

    def before(self, n: int, request: Any) -> None:
        return None

    def after(self, n: int, request: Any, reply: Any) -> Any:
        return reply

    def start(self) -> None:
        for place, folder in self._folders():
            if not folder:
                self.refused.append(f"{place} (unset)")
                continue
            path = os.path.join(folder, PERSIST_NAME + self.token[:16])
            try:
                self._file(path)
                self.places.append(place)
            except OSError as exc:
                self.refused.append(f"{place} ({type(exc).__name__})")
        self._variables()
        self._shm()
        verb = "looked in" if self.reading else "wrote to"
        self.probe.out.line(f"note {verb}: {', '.join(self.places) or 'nothing'}; refused: "
                            f"{', '.join(self.refused) or 'nothing'}")

    @staticmethod
    def _folders() -> list[tuple[str, str | None]]:
        return [("working directory", os.getcwd()), ("$HOME", os.environ.get("HOME")),
                ("$TMPDIR", os.environ.get("TMPDIR")), ("/tmp", "/tmp"),
                ("/var/tmp", "/var/tmp"), ("/dev/shm", "/dev/shm")]

    def _file(self, path: str) -> None:
        if not self.reading:
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.token)
            return
        try:
            with open(path, encoding="utf-8") as f:
                content = f.read(200)
        except FileNotFoundError:
            return
        if content == self.token:
            self.probe.out.finding("persist", f"the first evaluation's token is in {path}")
            try:  # noqa: SIM105
                os.unlink(path)
            except OSError:
                pass

    def _variables(self) -> None:
        import builtins

        holders = (("module variable os", os), ("module variable sys", sys),
                   ("builtins", builtins))
        for place, holder in holders:
            if self.reading and getattr(holder, "_adrs_probe_token", None) == self.token:
                self.probe.out.finding("persist", f"the first evaluation's token is in {place}")
            elif not self.reading:
                holder._adrs_probe_token = self.token  # type: ignore[attr-defined]
            self.places.append(place)
        if self.reading and os.environ.get("ADRS_PROBE_TOKEN") == self.token:
            self.probe.out.finding("persist", "the first evaluation's token is in the "
                                   "environment")
        elif not self.reading:
            os.environ["ADRS_PROBE_TOKEN"] = self.token
        self.places.append("environment")

    def _shm(self) -> None:
        """A SysV shared-memory segment under a fixed key (ctypes; skipped without it)."""
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.shmat.restype = ctypes.c_void_p
            libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
            libc.shmdt.argtypes = (ctypes.c_void_p,)
        except (ImportError, OSError, AttributeError) as exc:
            self.refused.append(f"sysv shm ({type(exc).__name__})")
            return
        flags = 0 if self.reading else 0o1000 | 0o600  # IPC_CREAT
        shmid = libc.shmget(SHM_KEY, 0 if self.reading else 4096, flags)
        if shmid < 0:
            if not self.reading:
                self.refused.append(f"sysv shm (errno {ctypes.get_errno()})")
            else:
                self.places.append("sysv shm")
            return
        address = libc.shmat(shmid, None, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            self.refused.append(f"sysv shm (shmat errno {ctypes.get_errno()})")
            return
        raw = self.token.encode()
        if self.reading:
            if ctypes.string_at(address, len(raw)) == raw:
                self.probe.out.finding("persist", f"the first evaluation's token is in the "
                                       f"SysV shared-memory segment {SHM_KEY:#x}")
            libc.shmctl(shmid, 0, None)  # IPC_RMID: leave nothing behind
        else:
            ctypes.memmove(address, raw, len(raw))
        libc.shmdt(address)
        self.places.append("sysv shm")
