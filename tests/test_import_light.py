"""`moeplan estimate` must never import torch (or pynvml): the core runs on any laptop."""

import subprocess
import sys


def test_estimate_does_not_import_torch(tmp_path):
    blocker = tmp_path / "torch"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('moeplan estimate imported torch')\n")
    (tmp_path / "pynvml.py").write_text("raise ImportError('moeplan estimate imported pynvml')\n")
    code = (
        "import sys; sys.argv = ['moeplan', 'estimate', 'deepseek-v3', '--json'];"
        "from moeplan.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules and 'pynvml' not in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(tmp_path), "PATH": ""},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"params"' in result.stdout
