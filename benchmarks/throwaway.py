"""Private Python environments for the benchmarks that measure a library the project does not depend on."""

import subprocess
import sys

from infra import STATE


def python_with(name: str, *requirements: str) -> str:
    """The Python of a private environment `name`, under the project's local state, with `requirements`
    installed; made once."""
    venv = STATE / "benchmarks" / name
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
    return str(python)
