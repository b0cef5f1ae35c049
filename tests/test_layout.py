"""The package's one-way flow, checked on the real imports of every module:
cli -> batch / sweep / report -> connectors, analyze, writeback -> model. No lower layer
imports a higher one, and only connectors (and the demo's logging, training.to_mlflow) import
a tracker SDK."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "tracker_diag"
# a module may import only modules of a lower or equal layer (same layer: no cycles, checked below)
LAYER = {"model": 0, "text": 0, "atomic": 0, "errors": 1, "settings": 2, "locks": 3, "keys": 2, "frames": 2, "analyze": 3,
         "writeback": 3, "params": 3, "plots": 3, "page": 5, "spark": 6, "connectors": 5, "tracker": 4, "training": 4, "batch": 5, "report": 6,
         "sweep": 6, "cli": 7, "__main__": 8, "__init__": 8}
TRACKERS = ("mlflow", "wandb")


def _imports(path: Path) -> set[str]:
    """tracker_diag modules and tracker SDKs a file imports, at any depth (lazy imports too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "tracker_diag" and len(parts) > 1:
                out.add(parts[1])
            elif parts[0] in TRACKERS:
                out.add(parts[0])
    return out


def _module(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    return rel.parts[0]


def test_every_module_is_placed_in_a_layer():
    assert {_module(p) for p in PKG.rglob("*.py")} <= set(LAYER)


def test_imports_flow_one_way_and_only_connectors_import_trackers():
    wrong = []
    for path in PKG.rglob("*.py"):
        me = _module(path)
        for dep in _imports(path):
            if dep in TRACKERS:
                if me != "connectors" and path.relative_to(PKG).as_posix() != "training/to_mlflow.py":
                    wrong.append(f"{path.relative_to(PKG)} imports {dep}")
            elif dep != me and LAYER[dep] >= LAYER[me] and me not in ("__init__", "__main__"):
                wrong.append(f"{path.relative_to(PKG)} ({me}, layer {LAYER[me]}) imports {dep} (layer {LAYER[dep]})")
    assert not wrong, "\n".join(wrong)


def test_the_environment_is_read_in_one_module():
    """Settings from the environment are read through tracker_diag.settings (its table is the
    README's); other modules may set variables for a child process, never read their own."""
    import re

    reads = re.compile(r"os\.getenv\(|os\.environ\.get\(|os\.environ\[[^]]+\](?!\s*=)|\bin os\.environ\b")
    wrong = [f"{p.relative_to(PKG)}:{i}: {line.strip()}" for p in PKG.rglob("*.py") if p.name != "settings.py"
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if reads.search(line)]
    assert not wrong, "\n".join(wrong)


def test_the_readme_tables_every_setting():
    from tracker_diag.settings import SETTINGS, markdown_table

    readme = (PKG.parent / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "README's settings table is out of date: paste settings.markdown_table()"
    assert all(f"`{s.name}`" in readme for s in SETTINGS)


def test_no_private_name_is_imported_across_modules():
    wrong = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tracker_diag"):
                wrong += [f"{path.relative_to(PKG)}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and a.name != "__version__"]
    assert not wrong, "\n".join(wrong)


def test_one_sql_text_lists_runs():
    """The single-process SQL path and the Spark engine list runs with the same query texts."""
    for name in ("spark.py", "connectors/mlflow.py"):
        text = (PKG / name).read_text(encoding="utf-8")
        assert "FROM latest_metrics" not in text and "FROM runs" not in text and "FROM tags" not in text, name


def test_errors_become_messages_in_one_place():
    """Commands raise; cli.main maps TrackerDiagError to "error:" lines and exit code 2 once."""
    cli = (PKG / "cli.py").read_text(encoding="utf-8")
    assert 'error: {exc}' not in cli and cli.count("sys.exit(EXIT_USAGE)") == 0 and cli.count("report_error(") == 2


def test_the_report_script_decides_nothing_python_decides():
    """The page's CSS and JavaScript are package files; roles, scales and the number format's
    inputs come from page.py as data, so the script holds none of them."""
    from tracker_diag.page import asset

    js, css = asset("report.js"), asset("report.css")
    assert "td-data" in js and "svg.mini" in css
    for decided_in_python in ("train_loss", "test_acc", ">100", "1e5", "1e-3", "toPrecision(3)", "toExponential(2)"):
        assert decided_in_python not in js, decided_in_python
    page = (PKG / "page.py").read_text(encoding="utf-8")
    assert "function(" not in page and "{box-sizing" not in page
