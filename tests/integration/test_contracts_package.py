"""`contracts/` is installable on its own: a storefront gets the models, the schemas and the client from a
wheel, without the services."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent
UV = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")


def test_the_contract_installs_alone_and_its_client_imports(tmp_path):
    subprocess.run([UV, "build", "--wheel", str(ROOT / "contracts"), "-o", str(tmp_path)], check=True,
                   capture_output=True)
    wheel = next(tmp_path.glob("orderflow_contracts-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "contracts/client.py" in names and "contracts/schemas/PlaceOrder.json" in names
    assert not [n for n in names if n.startswith(("services/", "infra/"))]

    venv = tmp_path / "venv"
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    subprocess.run([UV, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), str(wheel)], check=True)
    probe = ("from contracts.client import Client, key_of; from contracts.commands import ShipOrder; "
             "print(key_of(ShipOrder(order_id='o-1', shipment_id='s-1')))")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, check=True, capture_output=True,
                          text=True)
    assert done.stdout.strip() == "o-1"
