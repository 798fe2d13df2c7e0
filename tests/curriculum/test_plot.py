import subprocess
import sys
from pathlib import Path

from rlreason.curriculum.store import Attempt, StatsStore

REPO = Path(__file__).resolve().parents[2]


def test_plot_solve_rates_writes_a_png(tmp_path):
    path = tmp_path / "run" / "stats.sqlite"
    path.parent.mkdir()
    with StatsStore(path, "run") as store:
        for it in range(5):
            for q in range(6):
                hits = (q + it) % 5
                for phase in ("train", "selection"):
                    store.add([Attempt(f"q{q}", it, phase, float(j < hits), 3) for j in range(4)])
            store.commit(it)
    out = tmp_path / "plots" / "solve.png"
    subprocess.run([sys.executable, "experiments/plot_solve_rates.py", str(path), "-o", str(out)],
                   cwd=REPO, check=True, capture_output=True)
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
