"""A real PostgreSQL server of Debian's package on 127.0.0.1, for the tests, the benchmarks and
the fault harness (as tests/fault_proxy.py and tests/wandb_server.py serve them all).

    with PostgresServer(durable=False) as pg:
        pg.create("bench")          # an empty database
        uri = pg.uri("bench")       # postgresql://postgres@127.0.0.1:<port>/bench

Trust authentication, a socket directory of its own, a data directory outside pytest's
root-only tmp. As root, initdb and the server run as the ``postgres`` system user (they refuse
to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Self


def bin_dir() -> str | None:
    """The newest installed server's bin directory, or None (apt install postgresql)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


class PostgresServer:
    def __init__(self, *, durable: bool = True):
        self.durable = durable  # False: fsync off (tests); True: commits as a production server makes them
        self.bin = bin_dir()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (apt install postgresql)")
        self.base = Path(tempfile.mkdtemp(prefix="tracker-diag-pg-"))
        self.port = 0
        self._as_user: list[str] = []

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, capture_output=True)

    def __enter__(self) -> Self:
        data, sock = self.base / "data", self.base / "sock"
        sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
            shutil.chown(sock, "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._run(f"{self.bin}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1" + ("" if self.durable else " -c fsync=off")
        self._run(f"{self.bin}/pg_ctl", "-D", str(data), "-w", "-l", str(self.base / "log"), "-o", options, "start")
        return self

    def __exit__(self, *exc) -> None:
        self._run(f"{self.bin}/pg_ctl", "-D", str(self.base / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.base, ignore_errors=True)

    def uri(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create(self, database: str, template: str = "template1") -> str:
        """A new database, a copy of ``template`` (whose sessions are ended first: a copy needs
        a template nobody is connected to, and MLflow keeps a pool); returns its URI."""
        import sqlalchemy as sa

        admin = sa.create_engine(self.uri("postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as con:
            con.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                f"WHERE datname = '{template}' AND pid <> pg_backend_pid()")
            con.exec_driver_sql(f"CREATE DATABASE {database} TEMPLATE {template}")
        return self.uri(database)
