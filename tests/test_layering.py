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


def test_graph_module_level_imports_do_not_reach_gluon():
    # (engine/graph/serialize.py's import_block still builds a gluon GraphBlock inside the function)
    bad = {}
    for p in (ROOT / 'engine' / 'graph').glob('*.py'):
        tree = ast.parse(p.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        mods = [getattr(n, 'module', None) or '' for n in top] + [a.name for n in top for a in n.names]
        if any('gluon' in m for m in mods):
            bad[p.name] = mods
    assert not bad
