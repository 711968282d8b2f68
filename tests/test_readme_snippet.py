"""README's Python snippet (Reading, streaming, packing) runs as a saved script, worker processes included."""

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _snippet() -> str:
    m = re.search(r"## Reading, streaming, packing\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert m, "README.md has no Python snippet under '## Reading, streaming, packing'"
    return m.group(1)


def test_readme_snippet_runs_as_a_script(tmp_path):
    from jaxvac.simulate import simulate_survey

    code = _snippet()
    assert 'if __name__ == "__main__":' in code and "os.cpu_count()" in code  # workers start a new process
    simulate_survey(tmp_path / "sim", 12, seed=3, workers=1, progress=False, corrupt_fraction=0.0)
    script = tmp_path / "snippet.py"
    script.write_text(code)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "sim" / "spectra")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Spectrum ") and lines[0].endswith((".fits", ".fits.gz"))
    assert lines[1] == "12 spectra (1024, 3909) 0 rejected"  # the one batch: 12 files, padded to 1024 rows
