"""MXNet's JSON graph format: {"nodes": [...], "arg_nodes": [...], "node_row_ptr": [...],
"heads": [...], "attrs": {"mxnet_version": ...}}. Each node is {"op", "name", "attrs",
"inputs": [[node index, output index, version], ...]}; a variable's op is "null"; attribute
values are strings as MXNet writes them ("(3, 3)", "True", "0.001", "relu").
Reading validates every reference and never evaluates the text."""
import json
import re

import numpy as np

from ..base import MXNetError
from .symbol import _DTYPE_CODES, Node, Symbol

MXNET_VERSION = 10901
_CODE_DTYPES = {v: k for k, v in _DTYPE_CODES.items()}
_INT = re.compile(r'^[+-]?\d+$')
_FLOAT = re.compile(r'^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|nan)$')


def attr_string(v):
    """A Python attribute value the way MXNet writes it (str() of the Python value)."""
    if isinstance(v, (bool, np.bool_)):
        return 'True' if v else 'False'
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (tuple, list)):
        items = [attr_string(i) for i in v]
        return '(' + ', '.join(items) + (',)' if len(items) == 1 else ')')
    if v is None:
        return 'None'
    if isinstance(v, type) or isinstance(v, np.dtype):
        return np.dtype(v).name
    return str(v)


def _split_top(text):
    parts, depth, cur = [], 0, ''
    for ch in text:
        if ch in '([':
            depth += 1
        elif ch in ')]':
            depth -= 1
        if ch == ',' and depth == 0:
            parts.append(cur)
            cur = ''
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def parse_attr(s):
    """MXNet's attribute string -> Python value: tuples, bools, None, ints, floats, else str."""
    t = s.strip()
    if t in ('True', 'true'):
        return True
    if t in ('False', 'false'):
        return False
    if t == 'None':
        return None
    if len(t) >= 2 and t[0] in '([' and t[-1] in ')]':
        return tuple(parse_attr(p) for p in _split_top(t[1:-1]))
    if _INT.match(t):
        return int(t)
    if _FLOAT.match(t):
        return float(t)
    if t.endswith('L') and _INT.match(t[:-1]):
        return int(t[:-1])   # old MXNet wrote Python 2 longs: "(3L, 3L)"
    return s


# ---- writing ------------------------------------------------------------------------------------

def _node_dict(n, index):
    if n.is_variable:
        d = {'op': 'null', 'name': n.name}
        meta = dict(n.meta)
        if '__dtype__' in meta:
            meta['__dtype__'] = _DTYPE_CODES.get(np.dtype(meta['__dtype__']).name, meta['__dtype__'])
        if meta:
            d['attrs'] = {k: attr_string(v) for k, v in meta.items()}
        d['inputs'] = []
        return d
    op, attrs = n.op, dict(n.attrs)
    if n.spec.export_as is not None:
        op, attrs = n.spec.export_as(attrs)
    attrs = {k: attr_string(v) for k, v in attrs.items() if v is not None}
    attrs.update({k: attr_string(v) for k, v in n.meta.items()})
    roles = ['data'] + n.spec.present_params(n.attrs)
    inputs = []
    for k, (c, i) in enumerate(n.inputs):
        aux = k < len(roles) and roles[k] in n.spec.aux and c.is_variable
        inputs.append([index[id(c)], i, 1 if aux else 0])
    d = {'op': op, 'name': n.name}
    if attrs:
        d['attrs'] = attrs
    d['inputs'] = inputs
    return d


def to_json(sym):
    nodes = sym._nodes()
    index = {id(n): k for k, n in enumerate(nodes)}
    row_ptr = [0]
    for n in nodes:
        row_ptr.append(row_ptr[-1] + n.num_outputs)
    d = {'nodes': [_node_dict(n, index) for n in nodes],
         'arg_nodes': [k for k, n in enumerate(nodes) if n.is_variable],
         'node_row_ptr': row_ptr,
         'heads': [[index[id(n)], i, 0] for n, i in sym._outputs],
         'attrs': {'mxnet_version': ['int', MXNET_VERSION]}}
    return json.dumps(d, indent=2)


# ---- reading ------------------------------------------------------------------------------------

def _var_meta(attrs):
    meta = dict(attrs)
    if '__shape__' in meta:
        shape = parse_attr(meta['__shape__'])
        if not isinstance(shape, tuple) or not all(isinstance(s, int) for s in shape):
            raise ValueError(f"bad __shape__ {meta['__shape__']!r}")
        meta['__shape__'] = shape
    if '__dtype__' in meta:
        code = parse_attr(meta['__dtype__'])
        name = _CODE_DTYPES.get(code, code)
        meta['__dtype__'] = np.dtype(name).name
    return meta


def _node_attrs(nd):
    """Attributes of a node dict; MXNet before 1.0 wrote 'param' (op) and 'attr' (other)."""
    attrs = {}
    for key in ('param', 'attr', 'attrs'):
        a = nd.get(key, {})
        if not isinstance(a, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in a.items()):
            raise ValueError(f"'{key}' must map strings to strings")
        attrs.update(a)
    return attrs


def load_dict(d, where='symbol JSON'):
    def bad(msg):
        raise MXNetError(f'{where}: malformed MXNet symbol JSON: {msg}')
    if not isinstance(d, dict) or not isinstance(d.get('nodes'), list) or not isinstance(d.get('heads'), list):
        bad("expected an object with 'nodes' and 'heads' lists")
    nodes = []
    for k, nd in enumerate(d['nodes']):
        if not isinstance(nd, dict) or not isinstance(nd.get('op'), str) or not isinstance(nd.get('name'), str):
            bad(f"node {k}: expected an object with string 'op' and 'name'")
        try:
            attrs = _node_attrs(nd)
            inputs = [_entry(e, nodes, k) for e in nd.get('inputs', [])]
        except ValueError as e:
            bad(f"node {k} ('{nd['name']}'): {e}")
        if nd['op'] == 'null':
            if inputs:
                bad(f"node {k} ('{nd['name']}'): a variable has no inputs")
            try:
                nodes.append(Node(None, nd['name'], meta=_var_meta(attrs)))
            except (ValueError, TypeError) as e:
                bad(f"node {k} ('{nd['name']}'): {e}")
            continue
        meta = {a: v for a, v in attrs.items() if a.startswith('__')}
        op_attrs = {a: parse_attr(v) for a, v in attrs.items() if not a.startswith('__')}
        try:
            nodes.append(Node(nd['op'], nd['name'], op_attrs, inputs, meta))
        except MXNetError as e:
            raise MXNetError(f'{where}: {e}') from None
    try:
        heads = [_entry(e, nodes, len(nodes)) for e in d['heads']]
    except ValueError as e:
        bad(f'heads: {e}')
    if not heads:
        bad('no heads (outputs)')
    return Symbol(heads)


def _entry(e, nodes, k):
    if not isinstance(e, list) or not 2 <= len(e) <= 3 or not all(isinstance(i, int) for i in e):
        raise ValueError(f'input entry {e!r} is not [node, output, version]')
    if not 0 <= e[0] < min(k, len(nodes)):
        raise ValueError(f'input entry {e!r} refers to node {e[0]}, not an earlier node')
    node = nodes[e[0]]
    if not 0 <= e[1] < node.num_outputs:
        raise ValueError(f"input entry {e!r}: node '{node.name}' has {node.num_outputs} outputs")
    return (node, e[1])


def load_json(text, where='symbol JSON'):
    try:
        d = json.loads(text)
    except (json.JSONDecodeError, TypeError) as e:
        raise MXNetError(f'{where}: not valid JSON: {e}') from None
    if isinstance(d, dict) and d.get('format') == 'engine-graph':
        raise MXNetError(f"{where}: this is the engine's own graph format (written by an older "
                         'export); load it with gluon.SymbolBlock.imports')
    return load_dict(d, where)


def load(fname):
    try:
        with open(fname, 'rb') as f:
            text = f.read().decode('utf-8')
    except (OSError, UnicodeDecodeError) as e:
        raise MXNetError(f'{fname}: cannot read the symbol file: {e}') from None
    return load_json(text, str(fname))
