"""Without the ``mpi`` extra: ``import fmmsolve`` and the serial features work, and
``fmmsolve.distributed`` says which extra to install. The distributed FMM itself is tested under
``mpiexec`` in ``tests_mpi/``."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Make mpi4py and numba_mpi unimportable, whether or not they are installed.
WITHOUT_MPI = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mpi4py", "numba_mpi"):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
sys.meta_path.insert(0, Block())
import numpy as np, fmmsolve
x = np.random.default_rng(0).random((300, 3))
y = fmmsolve.FMMOperator(x, eps=1e-3, memory=None) @ np.ones(300)
assert np.isfinite(y).all()
assert not any(m.startswith(("mpi4py", "numba_mpi", "fmmsolve.distributed")) for m in sys.modules)
try:
    import fmmsolve.distributed
except ImportError as exc:
    print(exc)
else:
    raise SystemExit("imported fmmsolve.distributed without mpi4py")
"""


def test_without_mpi_the_serial_package_works_and_the_error_names_the_extra():
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", WITHOUT_MPI], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": path}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert 'pip install "fmmsolve[mpi]"' in proc.stdout
    assert "mpi4py" in proc.stdout
