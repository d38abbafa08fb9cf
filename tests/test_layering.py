"""Arrows point down only (ARCHITECTURE.md, issue 17 item 5): engine/gluon -> engine/graph ->
engine/ops -> kernels. Checked on the import statements of the source files, module level and
inside functions alike."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

# ops modules whose job is to call device kernels directly (registering them per device, or
# imperative update/RNN ops built on one device module's fused loops)
KERNEL_CALLERS = {'backends.py', 'optim_updates.py', 'rnn.py'}


def _imports(path):
    """Absolute names of every module `path` imports (relative imports resolved)."""
    package = path.relative_to(ROOT).with_suffix('').parts[:-1]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else ()
            mod = '.'.join(base + ((node.module,) if node.module else ()))
            names += [mod] + [f'{mod}.{a.name}' for a in node.names]
    return names


def test_ops_take_shape_arithmetic_from_shared_code_not_cpu_kernels():
    bad = {p.name: [n for n in _imports(p) if n.startswith(('kernels.cpu', 'kernels.cuda'))]
           for p in (ROOT / 'engine' / 'ops').glob('*.py') if p.name not in KERNEL_CALLERS}
    assert not {k: v for k, v in bad.items() if v}


def test_ops_do_not_import_graph_or_gluon():
    bad = {p.name: [n for n in _imports(p) if n.startswith(('engine.gluon', 'engine.graph'))]
           for p in (ROOT / 'engine' / 'ops').glob('*.py')}
    assert not {k: v for k, v in bad.items() if v}


def test_graph_does_not_import_gluon():
    bad = {p.name: [n for n in _imports(p) if n.startswith('engine.gluon')]
           for p in (ROOT / 'engine' / 'graph').glob('*.py')}
    assert not {k: v for k, v in bad.items() if v}
