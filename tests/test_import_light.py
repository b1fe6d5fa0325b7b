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


def test_readme_command_imports_neither_numpy_nor_yaml():
    """README's first command (Mixtral on the default single H100: does not fit, so the verdict finds the fewest
    GPUs) and a fitting one load no numpy and no yaml, rich report and --json alike."""
    for args in (["mixtral-8x7b"], ["mixtral-8x7b", "--json"], ["mixtral-8x7b", "--gpu", "h200", "--json"]):
        code = (
            f"import sys; sys.argv = ['moeplan', 'estimate', *{args!r}];"
            "from moeplan.cli.app import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, 1, None), e.code\n"
            "loaded = [name for name in ('numpy', 'yaml') if name in sys.modules]\n"
            "assert not loaded, loaded"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (args, result.stderr[-2000:])
        assert "Fewest" in result.stdout or '"fewest_gpus"' in result.stdout or '"fits": true' in result.stdout
