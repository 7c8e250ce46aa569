"""The engine must run without Django (web app, Celery and CLI alike)."""

import ast
import subprocess
import sys
from pathlib import Path

import governance.engine

ENGINE_DIR = Path(governance.engine.__file__).parent


def test_no_engine_module_imports_django():
    offenders = []
    for path in sorted(ENGINE_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            offenders += [f"{path.name}: {name}" for name in names
                          if name == "django" or name.startswith(("django.", "rest_framework"))]
    assert offenders == []


def test_importing_and_running_the_engine_loads_no_django():
    code = (
        "import sys\n"
        "from governance.engine import AegisConfig, ProposalInput, pcw_decide\n"
        "pcw_decide(ProposalInput('x'), AegisConfig.default()).to_dict()\n"
        "print(sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')))\n"
    )
    root = ENGINE_DIR.parents[1]
    output = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                            text=True, check=True, env={"PYTHONPATH": str(root)}).stdout
    assert output.strip() == "[]"
